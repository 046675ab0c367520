#pragma once

// Certificates from an ACME CA (C2D_ACME_DIRECTORY: Let's Encrypt, ZeroSSL,
// Pebble): the installation's account (made once per directory, its key
// sealed), then per certificate an order whose URL and key are stored on
// the certificate row before anything else, so that a job run again after
// a crash finishes the same order with the same key. Names are proven by
// HTTP-01 (the ingress sends /.well-known/acme-challenge/ to the certs
// endpoint, which answers from acme_http_challenges) or, for wildcards,
// DNS-01 (a TXT record through the DNS service).

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "libs/acme/client.h"
#include "libs/dns/client.h"
#include "libs/pg/pool.h"
#include "services/certs/config.h"
#include "services/certs/internal_ca.h"
#include "services/certs/store.h"

namespace c2d::certs {

class AcmeIssuer {
 public:
  // `dns` may be null: then only HTTP-01 names (no wildcards) can be issued.
  AcmeIssuer(pg::Pool& pool, const Config& config, dns::Client* dns)
      : pool_(pool), config_(config), dns_(dns) {}

  // A certificate for the row's names, within config.acme_timeout. Errors
  // carry the CA's problem (acme::ProblemType, acme::RetryAfter). A renewal
  // names the certificate it replaces (RFC 9773 "replaces") when the CA
  // offers renewal information.
  absl::StatusOr<Issued> Issue(const CertificateRow& row);
  // RFC 9773: the window in which the CA suggests renewing the certificate
  // `chain_pem`; Unimplemented when the CA offers no renewal information.
  absl::StatusOr<acme::SuggestedRenewal> SuggestedWindow(const std::string& chain_pem);

 private:
  // Issue, once: without handling a lost account.
  absl::StatusOr<Issued> IssueOnce(const CertificateRow& row);
  // The account's client, registered once.
  absl::StatusOr<acme::Client*> Account();
  // The order in flight for the row (or a new one, stored first) and its key.
  absl::StatusOr<std::pair<acme::Order, crypto::EcKey>> OrderFor(acme::Client& client,
                                                                 const CertificateRow& row);
  // Proves one name of the order.
  absl::Status Authorize(acme::Client& client, const std::string& authz_url,
                         const std::string& certificate_id, absl::Time deadline);
  // Removes the challenge answers of the certificate (HTTP-01 rows, TXT records).
  void Cleanup(const std::string& certificate_id);

  pg::Pool& pool_;
  const Config& config_;
  dns::Client* dns_;
  absl::Mutex mu_;
  std::unique_ptr<acme::Client> client_ ABSL_GUARDED_BY(mu_);
  std::string account_id_ ABSL_GUARDED_BY(mu_);
};

}  // namespace c2d::certs
