#pragma once

// The certs service's statements over domains, certificates and the HTTP-01
// answers. Every function runs inside the caller's transaction.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/crypto/seal.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/certs.pb.h"

namespace c2d::certs {

// The aad binding a certificate's sealed private key to the certificate.
std::string KeyAad(const std::string& certificate_id);

// The sealed value in columns i..i+3 of `row` (key id, wrapped key, nonce,
// ciphertext).
crypto::Sealed SealedAt(const pqxx::row& row, int i);

// A certificate as the issue job needs it.
struct CertificateRow {
  v1::Certificate cert;
  std::string issuer_kind;  // "internal" or "acme"
};

// Gives every routed hostname (service_routes) without a domain a DEFAULT
// domain, verified, with a pending certificate whose issuer `issuer_of`
// picks, and enqueues its `issue_cert`; removes the default domains of
// services routed under another hostname now (a rename), and every domain
// of a deleted service (freeing its custom hostnames). Returns how many
// domains it added.
absl::StatusOr<int> SyncDefaultDomains(
    pg::Tx& tx, const std::function<std::string(const std::string& hostname)>& issuer_of);

// Adds the CUSTOM domain `request` names (its hostname already checked by
// CustomHostname), pending its DNS record: NotFound when the service is not
// in the project (or deleted), AlreadyExists when the hostname is taken,
// ResourceExhausted past `max_per_service` custom domains.
absl::StatusOr<v1::Domain> AddCustomDomain(pg::Tx& tx, const v1::AddDomainRequest& request,
                                           int max_per_service);
// Deletes another service's claim on `hostname` unless it is verified (its
// owner proved nothing yet). Returns whether there was one.
absl::StatusOr<bool> ReleaseUnverifiedClaim(pg::Tx& tx, const std::string& hostname,
                                            const std::string& service_id);
// NotFound when there is no such domain.
absl::StatusOr<v1::Domain> GetDomain(pg::Tx& tx, const std::string& id);
// Deletes a CUSTOM domain and its certificate; NotFound, or
// FailedPrecondition for a DEFAULT domain.
absl::Status DeleteDomain(pg::Tx& tx, const std::string& id);

// A custom domain whose DNS record is due to be checked.
struct PendingDomain {
  std::string id, hostname, cname_target;
  int attempts = 0;
  absl::Time created_at;
};
absl::StatusOr<std::vector<PendingDomain>> DueVerifications(pg::Tx& tx, int limit);
// The record is in place: the domain is verified and gets a pending
// certificate from `issuer_kind`, with its `issue_cert` job. A domain
// deleted or verified meanwhile is left as it is.
absl::Status RecordVerified(pg::Tx& tx, const std::string& id, const std::string& issuer_kind);
// Not yet: `error` kept for the user, checked again at `next`, or given up.
absl::Status RecordUnverified(pg::Tx& tx, const std::string& id, const std::string& error,
                              absl::Time next, bool give_up);

// Enqueues `issue_cert` for the certificate (at most one live per certificate).
absl::Status EnqueueIssue(pg::Tx& tx, const std::string& certificate_id);
// Enqueues `issue_cert` for up to `limit` certificates whose renewal is due
// (or that were never issued and have no job); returns how many.
absl::StatusOr<int> EnqueueDue(pg::Tx& tx, int limit);

// NotFound when there is no such certificate.
absl::StatusOr<CertificateRow> LoadCertificate(pg::Tx& tx, const std::string& id);
// Serves the new chain and key from now on: state issued, attempts reset,
// next renewal at `renew_at`.
absl::Status StoreIssued(pg::Tx& tx, const std::string& id, const std::string& chain_pem,
                         const crypto::Sealed& key, absl::Time not_before, absl::Time not_after,
                         const std::string& serial, const std::string& issuer, absl::Time renew_at);
// A failed attempt: counted, its reason kept, retried at `retry_at`; an
// issued certificate becomes renewal_failing (it keeps serving).
absl::Status RecordFailure(pg::Tx& tx, const std::string& id, const std::string& error,
                           absl::Time retry_at);

// What the ingress serves for `name`: the newest issued certificate that
// lists it (exactly, or as the wildcard of its parent).
struct Served {
  std::string certificate_id;
  int64_t updated_us = 0;  // changes with every renewal
  std::string chain_pem;
  crypto::Sealed key;
  std::string issuer_kind;
};
absl::StatusOr<std::optional<Served>> ServedFor(pg::Tx& tx, const std::string& name,
                                                int64_t known_updated_us);

// The HTTP-01 key authorization for `token`; NotFound when none.
absl::StatusOr<std::string> ChallengeAnswer(pg::Tx& tx, const std::string& token);

absl::StatusOr<v1::Certificate> GetCertificate(pg::Tx& tx, const std::string& id);
// Soonest expiry first (never-issued ones last), after the certificate
// `after_id`.
absl::StatusOr<v1::ListCertificatesResponse> ListCertificates(
    pg::Tx& tx, const v1::ListCertificatesRequest& request, int page_size);
absl::StatusOr<v1::ListDomainsResponse> ListDomains(pg::Tx& tx,
                                                    const v1::ListDomainsRequest& request,
                                                    int page_size);

}  // namespace c2d::certs
