#pragma once

// An authenticated session with an OpenStack cloud, the base of every
// OpenStack client in c2d (Nova, Neutron, Cinder, Designate, Swift).
//
//   openstack::Session os({.auth_url = "https://keystone.example:5000/v3",
//                          .username = "c2d", .password = "…", .project_name = "c2d"});
//   auto servers = os.Call("compute", {.method = "GET", .path = "/servers"});
//
// Tokens: Keystone v3, by password (a user scoped to a project) or by
// application credential (scoped by itself). A token is cached and used
// until kRefreshBefore ahead of its expiry, measured on this machine's clock
// from the lifetime Keystone gave it (expires_at - issued_at), so a skewed
// clock cannot make c2d use an expired token. A service that answers 401
// (a token revoked early, Keystone restarted) gets one new token and the
// call once more.
//
// Endpoints come from the token's catalog: the service type's endpoint of
// the configured interface (public unless said otherwise), in the
// configured region (any region when none is).
//
// Calls: every call has a deadline. Reads and idempotent writes (GET, HEAD,
// PUT, DELETE) that meet a 5xx, a 429 or a lost connection are sent again
// after a backoff (Retry-After honoured, up to kMaxRetryAfter), at most
// Options::retries times; a POST is never sent twice, since the first may
// have made something (callers record what they create before creating it
// and find it again by name). Error answers become Status codes as
// libs/cloud/openstack/errors.h says.
//
// Thread-safe; Token() authenticates once for any number of waiting
// callers.

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/http/client.h"

namespace c2d::cloud::openstack {

struct Credentials {
  std::string auth_url;  // Keystone's v3 endpoint, e.g. https://keystone.example:5000/v3
  // Password: a user of a domain (by id when set, else by name) ...
  std::string username;
  std::string password;
  std::string user_domain_id;
  std::string user_domain_name = "Default";
  // ... scoped to a project: by id, or by name in a domain.
  std::string project_id;
  std::string project_name;
  std::string project_domain_id;
  std::string project_domain_name = "Default";
  // An application credential instead, when its id is set.
  std::string application_credential_id;
  std::string application_credential_secret;
  std::string region;                // empty: any region
  std::string interface = "public";  // public, internal or admin
  std::string ca_file;               // a PEM bundle to trust instead of the system's
};

struct CallRequest;

struct Options {
  std::chrono::milliseconds timeout{30'000};  // each attempt of a call
  int retries = 3;
  std::chrono::milliseconds backoff_base{500};  // doubled at each retry
  // Asked before each call is sent: an error it returns is the call's
  // answer, and nothing is sent (tests inject failures at chosen steps).
  std::function<absl::Status(const std::string& service_type, const CallRequest& request)>
      before_call;
  // Asked after a call was answered (any answer): an error it returns
  // replaces the answer, as when a reply is lost (tests again).
  std::function<absl::Status(const std::string& service_type, const CallRequest& request)>
      after_call;
};

struct CallRequest {
  std::string method = "GET";
  // Appended to the endpoint's URL ("/servers/ID"); a full URL (a "next"
  // link of a listing) is used as it is.
  std::string path;
  std::optional<nlohmann::json> body;  // sent as application/json
  std::vector<std::pair<std::string, std::string>> headers;
  std::string raw_body;    // when `body` is unset (Swift objects)
  bool parse_json = true;  // false: the answer is bytes (Reply::raw only)
};

struct Reply {
  long status = 0;
  nlohmann::json body;  // null when the answer had none or was not JSON
  std::string raw;
  std::multimap<std::string, std::string> headers;  // names in lower case
  std::string Header(const std::string& name) const;
};

class Session {
 public:
  static constexpr absl::Duration kRefreshBefore = absl::Minutes(5);
  static constexpr absl::Duration kMaxRetryAfter = absl::Seconds(30);

  explicit Session(Credentials credentials, Options options = {});
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // A token valid for at least kRefreshBefore (or half its lifetime, for
  // short-lived ones). Unauthenticated when Keystone refuses the
  // credentials, Unavailable when it cannot be reached.
  absl::StatusOr<std::string> Token();
  // The project the token is scoped to.
  absl::StatusOr<std::string> ProjectId();
  // The URL of `service_type`'s endpoint ("compute", "network", "volumev3",
  // "image", "object-store", "dns"), without a trailing slash.
  // FailedPrecondition when the catalog has none (the message lists what it has).
  absl::StatusOr<std::string> Endpoint(const std::string& service_type);
  // Calls the service. A 2xx (or 3xx) answer is the Reply; any other an error Status.
  absl::StatusOr<Reply> Call(const std::string& service_type, const CallRequest& request);
  // How many times Keystone was asked for a token (for tests and metrics).
  int authentications() const;

 private:
  struct Cached {
    std::string token;
    absl::Time refresh_at;
    std::string project_id;
    nlohmann::json catalog;
  };
  absl::StatusOr<Reply> Send(const std::string& service_type, const CallRequest& request);
  absl::StatusOr<Cached> Authenticate() const;
  nlohmann::json AuthRequest() const;
  absl::StatusOr<Cached> Current();
  // Drops `token` from the cache if it is still the cached one.
  void Forget(const std::string& token);
  // `repeatable`: safe to send again whatever the method.
  absl::StatusOr<http::Response> SendWithRetries(http::Request request, bool repeatable) const;

  const Credentials credentials_;
  const Options options_;
  mutable absl::Mutex auth_mu_;  // held while authenticating, so only one caller does
  mutable absl::Mutex mu_;
  std::optional<Cached> cached_ ABSL_GUARDED_BY(mu_);
  int authentications_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace c2d::cloud::openstack
