// The ingress client against the real Caddy that tools/test starts: routes
// balance over upstreams, changes are targeted by @id, and unknown hosts get
// a clear 404. (Zero-downtime switching is not claimed here: see
// libs/ingress/caddy.h.)

#include "libs/ingress/caddy.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/http/client.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A plain HTTP server answering `body` on a free port.
struct Upstream {
  explicit Upstream(const std::string& body)
      : dir(fs::path(testing::RequireEnv("C2D_TEST_TMP")) / ids::New("up")),
        port(testing::FreePort()) {
    fs::create_directories(dir);
    std::ofstream(dir / "index.html") << body;
    server = std::make_unique<testing::Subprocess>(
        std::vector<std::string>{"/usr/bin/python3", "-m", "http.server", std::to_string(port),
                                 "--bind", "127.0.0.1", "--directory", dir.string()},
        std::map<std::string, std::string>{}, (dir.string() + ".log"));
    REQUIRE(testing::WaitFor(10s, [&] {
      auto r = http::Send({.url = absl::StrCat("http://127.0.0.1:", port, "/")});
      return r.ok() && r->status == 200;
    }));
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }
  fs::path dir;
  int port;
  std::unique_ptr<testing::Subprocess> server;
};

// GET / through the ingress for `host`: the body, or "" on any failure.
std::string ViaIngress(const std::string& host, long* status = nullptr) {
  auto r =
      http::Send({.url = absl::StrCat("http://", testing::RequireEnv("C2D_TEST_CADDY_HTTP"), "/"),
                  .headers = {{"Host", host}},
                  .timeout = 5s});
  if (status != nullptr) *status = r.ok() ? r->status : 0;
  if (!r.ok()) UNSCOPED_INFO("ingress request failed: " << r.status().ToString());
  return r.ok() && r->status == 200 ? r->body : "";
}

// Inserting or deleting a route makes Caddy 2.6 swap servers, and a request
// arriving during the swap can be reset (libs/ingress/caddy.h). These tests
// are about routing, so they let a swap settle before sending traffic.
void Settle() { std::this_thread::sleep_for(500ms); }

std::string Host(const char* name) {
  return absl::StrCat(name, ".", absl::AsciiStrToLower(ids::New("p").substr(20)), ".localhost");
}

TEST_CASE("routes balance over upstreams and change only their own host", "[ingress]") {
  ingress::Caddy caddy(testing::RequireEnv("C2D_TEST_CADDY_ADMIN"));
  Upstream a("from-a"), b("from-b"), other("from-other");
  const std::string web = Host("web"), api = Host("api");
  REQUIRE(caddy.SetRoute(web, {a.address(), b.address()}).ok());
  REQUIRE(caddy.SetRoute(api, {other.address()}).ok());
  Settle();
  CHECK(*caddy.Upstreams(web) == std::vector<std::string>{a.address(), b.address()});

  std::set<std::string> seen;
  for (int i = 0; i < 10; ++i) {
    long status = 0;
    std::string body = ViaIngress(web, &status);
    INFO("request " << i << " answered " << status);
    CHECK(status == 200);
    seen.insert(body);
  }
  CHECK(seen == std::set<std::string>{"from-a", "from-b"});
  CHECK(ViaIngress(api) == "from-other");

  // Replacing web's upstreams leaves api alone.
  REQUIRE(caddy.SetRoute(web, {b.address()}).ok());
  for (int i = 0; i < 5; ++i) CHECK(ViaIngress(web) == "from-b");
  CHECK(ViaIngress(api) == "from-other");

  // Removed: the host is unknown again; removing twice is fine.
  REQUIRE(caddy.RemoveRoute(web).ok());
  REQUIRE(caddy.RemoveRoute(web).ok());
  Settle();
  long status = 0;
  ViaIngress(web, &status);
  CHECK(status == 404);
  CHECK(absl::IsNotFound(caddy.Upstreams(web).status()));
  CHECK(ViaIngress(api) == "from-other");
  REQUIRE(caddy.RemoveRoute(api).ok());
}

}  // namespace
}  // namespace c2d
