// The registry client's Bearer-token flow against a real Distribution
// registry configured for token auth, with a token service of our own
// (tests/support/token_server.py): the challenge is answered, tokens are
// cached per scope, and bad credentials are reported as such.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/http/client.h"
#include "libs/oci/registry.h"
#include "nlohmann/json.hpp"
#include "tests/support/pg_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

int TokenRequests(int port) {
  auto r = http::Send({.url = absl::StrCat("http://127.0.0.1:", port, "/count")});
  REQUIRE(r.ok());
  return nlohmann::json::parse(r->body)["count"];
}

TEST_CASE("the registry client answers Bearer challenges with cached tokens", "[oci]") {
  const char* tmp = std::getenv("C2D_TEST_TMP");
  const fs::path dir = fs::path(tmp ? tmp : "/tmp") / ids::New("tokenreg");
  fs::create_directories(dir);
  auto openssl =
      RunCommand({.argv = {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                           (dir / "key.pem").string(), "-out", (dir / "cert.pem").string(), "-days",
                           "1", "-subj", "/CN=c2d-test-token"}});
  REQUIRE(openssl.ok());
  REQUIRE(openssl->exit_code == 0);
  const int token_port = testing::FreePort(), registry_port = testing::FreePort();
  std::ofstream(dir / "config.yml") << absl::StrCat(R"(version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: )",
                                                    (dir / "data").string(), R"(}
  delete: {enabled: true}
http: {addr: "127.0.0.1:)",
                                                    registry_port, R"("}
auth:
  token:
    realm: "http://127.0.0.1:)",
                                                    token_port, R"(/token"
    service: c2d-test-registry
    issuer: c2d-test
    rootcertbundle: )",
                                                    (dir / "cert.pem").string(), "\n");
  testing::Subprocess tokens(
      {"/usr/bin/python3", C2D_TOKEN_SERVER, std::to_string(token_port), (dir / "key.pem").string(),
       (dir / "cert.pem").string(), "alice", "s3cret"},
      {}, (dir / "tokens.log").string());
  testing::Subprocess registry({"/usr/bin/docker-registry", "serve", (dir / "config.yml").string()},
                               {}, (dir / "registry.log").string());
  const std::string url = absl::StrCat("http://127.0.0.1:", registry_port);
  REQUIRE(testing::WaitFor(20s, [&] {
    auto r = http::Send({.url = url + "/v2/"});
    auto t = http::Send({.url = absl::StrCat("http://127.0.0.1:", token_port, "/count")});
    return r.ok() && r->status == 401 && t.ok() && t->status == 200;
  }));
  INFO(registry.Output());

  oci::Registry client({.url = url, .username = "alice", .password = "s3cret"});
  REQUIRE(client.Ping().ok());
  const int after_ping = TokenRequests(token_port);
  CHECK(after_ping == 1);
  // Authenticated but the repository is unknown: NotFound, not Unauthenticated.
  CHECK(absl::IsNotFound(client.ListTags("c2d/nothing-here").status()));
  CHECK(absl::IsNotFound(client.ResolveDigest("c2d/nothing-here", "latest").status()));
  const int after_pull_scope = TokenRequests(token_port);
  CHECK(after_pull_scope == after_ping + 1);  // one token for the pull scope
  CHECK(absl::IsNotFound(client.ListTags("c2d/nothing-here").status()));
  CHECK(TokenRequests(token_port) == after_pull_scope);  // cached

  oci::Registry wrong({.url = url, .username = "alice", .password = "nope"});
  absl::Status denied = wrong.Ping();
  CHECK(absl::IsUnauthenticated(denied));
  CHECK(absl::StrContains(denied.message(), "token"));
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace c2d
