#pragma once

// A fake OpenStack for the OpenStack clients' fast tests: one HTTP server
// on loopback that plays Keystone v3 (tokens and a catalog whose every
// endpoint points back at it: "<base>/<type>" public and
// "<base>/internal/<type>" internal in RegionOne, "<base>/two/<type>" public
// in RegionTwo) and answers the other
// services' calls with the official api-ref samples of
// tests/fixtures/openstack/, or with what a test scripts. It records every
// request and injects failures.
//
//   FakeOpenStack os;
//   os.Answer("POST", "/compute/servers", 202, os.Sample("nova/v2.100-server-create-resp.json"));
//   os.FailNext("GET", "/compute/servers", 503);          // then the scripted answer
//   ... Session({.auth_url = os.auth_url(), .username = os.username(), ...}) ...
//   CHECK(os.Requests("POST", "/compute/servers").size() == 1);
//
// Tokens: the user "c2d" with password "secret" in project "c2d" (id
// kProjectId), domain "Default", or the application credential
// kAppCredentialId / "app-secret". A call without a token it issued (or
// with one revoked by RevokeTokens) gets 401. Thread-safe.

#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/httpd/server.h"

namespace c2d::testing {

class FakeOpenStack {
 public:
  static constexpr char kProjectId[] = "5f6d02800076a91ea89d59b3e02ceca5";
  static constexpr char kAppCredentialId[] = "aabbccdd00112233";

  FakeOpenStack();
  ~FakeOpenStack();

  std::string base() const;      // http://127.0.0.1:PORT
  std::string auth_url() const;  // base + "/identity/v3"

  struct Recorded {
    std::string method, path, target, token, body;
    std::map<std::string, std::string> headers;
  };
  // Requests whose path starts with `path_prefix` (every one for "").
  std::vector<Recorded> Requests(const std::string& method = "",
                                 const std::string& path_prefix = "") const;

  // The answer to `method` `path` (exact, without the query) from now on.
  void Answer(const std::string& method, const std::string& path, int status, std::string body,
              std::vector<std::pair<std::string, std::string>> headers = {});
  // The next `times` requests to `method` `path` get `status` and `body`
  // (then the scripted answer again).
  void FailNext(const std::string& method, const std::string& path, int status,
                std::string body = "", int times = 1,
                std::vector<std::pair<std::string, std::string>> headers = {});
  // A sample file's text, tests/fixtures/openstack/<relative>.
  static std::string Sample(const std::string& relative);

  // Tokens issued from now on live this long (Keystone's default: 1 h).
  void SetTokenLifetime(absl::Duration lifetime);
  // Every token issued so far answers 401 from now on.
  void RevokeTokens();
  int tokens_issued() const;

 private:
  struct Scripted {
    int status = 200;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  httpd::Response Handle(httpd::Request& req);
  httpd::Response IssueToken(const httpd::Request& req);
  nlohmann::json Catalog() const;

  std::unique_ptr<httpd::Server> server_;
  mutable absl::Mutex mu_;
  std::vector<Recorded> requests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Scripted> answers_ ABSL_GUARDED_BY(mu_);  // "METHOD path"
  std::map<std::string, std::deque<Scripted>> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> tokens_ ABSL_GUARDED_BY(mu_);  // token -> valid
  absl::Duration lifetime_ ABSL_GUARDED_BY(mu_) = absl::Hours(1);
};

}  // namespace c2d::testing
