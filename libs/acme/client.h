#pragma once

// An RFC 8555 ACME client: account, orders, authorizations, challenges,
// finalization, certificate download, and RFC 9773 renewal information.
// HTTP goes through libs/http (every call bounded by Options::timeout), keys
// and CSRs through libs/crypto/x509.
//
// The CA's errors arrive as absl::Status built by libs/acme/problem.h:
// branch on the code, ProblemType() and RetryAfter(); the message carries
// the CA's own explanation for users. A badNonce answer is retried (up to
// kBadNonceRetries times, with the fresh nonce that answer carried), so
// callers never see one unless the CA keeps refusing.
//
// Issuing a certificate:
//   acme::Client client(options, account_key, stored_account_url);
//   C2D_ASSIGN_OR_RETURN(std::string kid, client.RegisterAccount("ops@example.org"));
//   C2D_ASSIGN_OR_RETURN(acme::Order order, client.NewOrder({{"dns", "app.example.org"}}));
//   for (const std::string& url : order.authorizations) {
//     C2D_ASSIGN_OR_RETURN(acme::Authorization authz, client.GetAuthorization(url));
//     if (authz.status == "valid") continue;
//     const acme::Challenge* http01 = authz.Find("http-01");
//     ... serve client.KeyAuthorization(http01->token) ...
//     C2D_RETURN_IF_ERROR(client.AcceptChallenge(http01->url).status());
//     C2D_RETURN_IF_ERROR(client.WaitAuthorization(url, deadline).status());
//   }
//   C2D_ASSIGN_OR_RETURN(order, client.WaitOrder(order.url, "ready", deadline));
//   C2D_ASSIGN_OR_RETURN(order, client.Finalize(order, csr_der));
//   C2D_ASSIGN_OR_RETURN(order, client.WaitOrder(order.url, "valid", deadline));
//   C2D_ASSIGN_OR_RETURN(std::string chain_pem, client.DownloadChain(order.certificate));
//
// Thread-safe: the directory, the nonce pool and the account URL are
// guarded by one mutex, never held during HTTP calls. The client never logs;
// its messages hold no key material.

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/acme/problem.h"
#include "libs/crypto/x509.h"
#include "libs/http/client.h"

namespace c2d::acme {

inline constexpr int kBadNonceRetries = 5;

struct Options {
  std::string directory_url;
  // PEM bundle trusted for the CA's https instead of the system store
  // (Pebble's test CA); "" = the system store.
  std::string ca_file;
  std::chrono::milliseconds timeout{30'000};  // each HTTP exchange
  std::string user_agent = "c2d-acme/0.1";
};

struct Identifier {
  std::string type = "dns";
  std::string value;
  bool operator==(const Identifier&) const = default;
};

struct Order {
  std::string url;     // the order's own URL (its Location at creation)
  std::string status;  // pending, ready, processing, valid, invalid
  std::optional<absl::Time> expires;
  std::vector<Identifier> identifiers;
  std::vector<std::string> authorizations;  // URLs
  std::string finalize;                     // URL
  std::string certificate;                  // URL, once valid
  absl::Status error;                       // the CA's problem, OK when none
};

struct Challenge {
  std::string type;  // http-01, dns-01, tls-alpn-01, ...
  std::string url;
  std::string token;
  std::string status;  // pending, processing, valid, invalid
  absl::Status error;  // why validation failed, OK when it did not
};

struct Authorization {
  std::string url;
  Identifier identifier;  // for a wildcard order, the name without "*."
  std::string status;     // pending, valid, invalid, deactivated, expired, revoked
  bool wildcard = false;
  std::optional<absl::Time> expires;
  std::vector<Challenge> challenges;

  // The challenge of `type`, or nullptr when the CA offers none.
  const Challenge* Find(absl::string_view type) const;
};

// RFC 9773 §4.2: when the CA suggests renewing.
struct SuggestedRenewal {
  absl::Time window_start;
  absl::Time window_end;
  std::string explanation_url;                // "" when none
  std::optional<absl::Duration> retry_after;  // when to ask again, if the CA said
};

class Client {
 public:
  // `account_url` is the account's URL (its "kid") when already known, e.g.
  // stored after an earlier RegisterAccount.
  Client(Options options, crypto::EcKey account_key, std::string account_url = "");
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const crypto::EcKey& account_key() const { return account_key_; }
  std::string account_url() const;

  // Whether the directory offers renewalInfo (RFC 9773). Fetches the
  // directory on first use, like every call.
  absl::StatusOr<bool> HasRenewalInfo();

  // Creates the account of the key, agreeing to the terms of service, or
  // finds it: newAccount with an existing key answers with the same URL.
  // `email` may be "" (no contact). Returns and remembers the account URL.
  absl::StatusOr<std::string> RegisterAccount(absl::string_view email);

  // A new order. `replaces_ari_id` (RFC 9773 §5, the ARI id of the
  // certificate this one renews) is sent only when the CA offers
  // renewalInfo.
  absl::StatusOr<Order> NewOrder(const std::vector<Identifier>& identifiers,
                                 absl::string_view replaces_ari_id = "");
  absl::StatusOr<Order> GetOrder(const std::string& url);
  absl::StatusOr<Authorization> GetAuthorization(const std::string& url);

  // token "." JWK thumbprint of the account key (RFC 8555 §8.1): the
  // HTTP-01 response body at /.well-known/acme-challenge/<token>.
  std::string KeyAuthorization(absl::string_view token) const;
  // base64url(SHA-256(KeyAuthorization(token))): the DNS-01 TXT record
  // value at _acme-challenge.<name>.
  std::string Dns01TxtValue(absl::string_view token) const;

  // Tells the CA the challenge response is in place (POST {}).
  absl::StatusOr<Challenge> AcceptChallenge(const std::string& url);

  // Polls until the authorization leaves "pending" (honouring Retry-After,
  // kept between kMinPoll and kMaxPoll). valid: returns it. invalid: the
  // failed challenge's problem (code, type and the CA's reason), prefixed
  // with the identifier. Other states: FailedPrecondition.
  // DeadlineExceeded when `deadline` passes first.
  absl::StatusOr<Authorization> WaitAuthorization(const std::string& url, absl::Time deadline);
  // Polls until the order reaches `wanted` ("ready" or "valid"; a later
  // state also counts). invalid: the order's problem (FailedPrecondition
  // when it names none). DeadlineExceeded when `deadline` passes first.
  absl::StatusOr<Order> WaitOrder(const std::string& url, absl::string_view wanted,
                                  absl::Time deadline);

  // Sends the CSR (DER) to the order's finalize URL; returns the order as
  // the CA answered (usually "processing" or "valid").
  absl::StatusOr<Order> Finalize(const Order& order, absl::string_view csr_der);
  // The PEM chain at a valid order's certificate URL, leaf first.
  absl::StatusOr<std::string> DownloadChain(const std::string& url);

  // RFC 9773 renewal information for a certificate's ARI id
  // (crypto::CertificateInfo::ari_id). Unimplemented when the CA offers no
  // renewalInfo.
  absl::StatusOr<SuggestedRenewal> RenewalInfo(absl::string_view ari_cert_id);

  static constexpr absl::Duration kMinPoll = absl::Milliseconds(200);
  static constexpr absl::Duration kMaxPoll = absl::Seconds(5);

 private:
  struct Directory {
    std::string new_nonce, new_account, new_order, renewal_info;
  };
  enum class Signer { kJwk, kKid };

  absl::StatusOr<Directory> GetDirectory();
  absl::StatusOr<std::string> TakeNonce();
  void KeepNonce(const http::Response& response);
  // Sends with the options' CA file, timeout and user agent; keeps the
  // answer's Replay-Nonce.
  absl::StatusOr<http::Response> Send(http::Request request);
  // A signed POST (payload "" = POST-as-GET); error answers become their
  // problem Status, badNonce answers are retried.
  absl::StatusOr<http::Response> Post(const std::string& url, absl::string_view payload,
                                      Signer signer, absl::string_view what,
                                      absl::string_view accept = "");
  // GetOrder / GetAuthorization, with the answer's Retry-After for polling.
  absl::StatusOr<Order> FetchOrder(const std::string& url, std::optional<absl::Duration>* retry);
  absl::StatusOr<Authorization> FetchAuthorization(const std::string& url,
                                                   std::optional<absl::Duration>* retry);

  const Options options_;
  const crypto::EcKey account_key_;
  mutable absl::Mutex mu_;
  std::optional<Directory> directory_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> nonces_ ABSL_GUARDED_BY(mu_);
  std::string account_url_ ABSL_GUARDED_BY(mu_);
};

}  // namespace c2d::acme
