// The local ingress against the real Caddy and PowerDNS that tools/test
// starts: upstreams set through DNS records balance round-robin, a change
// reaches Caddy within its refresh without a reload (so switching upstreams
// under steady traffic fails no request), an instance that cannot accept
// connections in time costs a retry on another, not an error, a service
// without healthy upstreams answers 503, and an unknown host 404. The
// records go through the DNS service (in this process, on a test database).

#include "libs/ingress/upstreams.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/http/client.h"
#include "tests/support/dns_server.h"
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

ingress::Options TestOptions() {
  return {.pdns = {.api_url = testing::RequireEnv("C2D_TEST_PDNS_API_URL"),
                   .api_key = testing::RequireEnv("C2D_TEST_PDNS_API_KEY")},
          .zone = testing::RequireEnv("C2D_TEST_INGRESS_ZONE"),
          .unavailable_addr = testing::RequireEnv("C2D_TEST_INGRESS_UNAVAILABLE_ADDR")};
}

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

// Waits (at most a few refreshes) until the ingress answers `host` with `status`.
bool AnswersWith(const std::string& host, long want) {
  return testing::WaitFor(5s, [&] {
    long status = 0;
    ViaIngress(host, &status);
    return status == want;
  });
}

// The DNS owner of the test's records.
constexpr char kOwner[] = "service:ingress-test";

// The upstream table written through a DNS service of the test's own.
struct Routes {
  Routes() : pool(db.NewPool()), dns(db, *pool), upstreams(TestOptions(), dns.channel()) {}
  testing::TestDatabase db;
  std::unique_ptr<pg::Pool> pool;
  testing::DnsServer dns;
  ingress::Upstreams upstreams;
};

std::string Host(const char* name) {
  return absl::StrCat(name, ".", absl::AsciiStrToLower(ids::New("p").substr(20)), ".localhost");
}

TEST_CASE("upstreams balance round-robin and change only their own host", "[ingress]") {
  Routes routes;
  ingress::Upstreams& upstreams = routes.upstreams;
  REQUIRE(upstreams.Check().ok());
  Upstream a("from-a"), b("from-b"), other("from-other");
  const std::string web = Host("web"), api = Host("api");
  REQUIRE(upstreams.Set(kOwner, web, {a.address(), b.address()}).ok());
  REQUIRE(upstreams.Set(kOwner, api, {other.address()}).ok());
  std::vector<std::string> both{a.address(), b.address()};
  std::sort(both.begin(), both.end());
  CHECK(*upstreams.Get(web) == both);
  REQUIRE(AnswersWith(web, 200));

  // Round-robin (its counter is shared by every host, so other traffic may
  // skew the split, but both take turns).
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) seen.insert(ViaIngress(web));
  CHECK(seen == std::set<std::string>{"from-a", "from-b"});
  CHECK(ViaIngress(api) == "from-other");

  // Replacing web's upstreams leaves api alone.
  REQUIRE(upstreams.Set(kOwner, web, {b.address()}).ok());
  CHECK(testing::WaitFor(
      5s, [&] { return ViaIngress(web) == "from-b" && ViaIngress(web) == "from-b"; }));
  CHECK(ViaIngress(api) == "from-other");

  // No upstream: the service is known but unavailable.
  REQUIRE(upstreams.Set(kOwner, web, {}).ok());
  CHECK(upstreams.Get(web)->empty());
  REQUIRE(AnswersWith(web, 503));

  // Removed: the host is unknown again; removing twice is fine.
  REQUIRE(upstreams.Remove(kOwner, web).ok());
  REQUIRE(upstreams.Remove(kOwner, web).ok());
  CHECK(AnswersWith(web, 404));
  CHECK(absl::IsNotFound(upstreams.Get(web).status()));
  CHECK(ViaIngress(api) == "from-other");
  REQUIRE(upstreams.Remove(kOwner, api).ok());
}

TEST_CASE("switching upstreams under steady traffic fails no request", "[ingress]") {
  Routes routes;
  ingress::Upstreams& upstreams = routes.upstreams;
  Upstream a("from-a"), b("from-b");
  const std::string web = Host("web");
  REQUIRE(upstreams.Set(kOwner, web, {a.address()}).ok());
  REQUIRE(AnswersWith(web, 200));

  std::atomic<bool> done{false};
  std::thread flipper([&] {
    for (int i = 0; !done.load(); ++i) {
      (void)upstreams.Set(kOwner, web, {i % 2 == 0 ? b.address() : a.address()});
      std::this_thread::sleep_for(200ms);
    }
  });
  int failed = 0;
  std::set<std::string> seen;
  for (int i = 0; i < 600; ++i) {
    long status = 0;
    std::string body = ViaIngress(web, &status);
    if (status != 200) ++failed;
    seen.insert(body);
  }
  done = true;
  flipper.join();
  CHECK(failed == 0);
  CHECK(seen == std::set<std::string>{"from-a", "from-b"});
  REQUIRE(upstreams.Remove(kOwner, web).ok());
}

// A listener whose accept queue is full: the kernel drops every further
// SYN (net.ipv4.tcp_abort_on_overflow=0), as it does for a saturated app
// that accepts too slowly, so a connection attempt only ends by timing out.
class FullAcceptQueue {
 public:
  FullAcceptQueue() {
    listener_ = Socket();
    sockaddr_in addr = Loopback(0);
    socklen_t len = sizeof(addr);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    REQUIRE(::listen(listener_, 0) == 0);  // room for one connection
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    // Fill the queue (never accepted): connect until an attempt hangs.
    for (int i = 0; i < 8; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      REQUIRE(fd >= 0);
      sockaddr_in to = Loopback(port_);
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 300) <= 0) {
        ::close(fd);
        break;
      }
      queued_.push_back(fd);
    }
    REQUIRE(!queued_.empty());
    REQUIRE(queued_.size() < 8);
  }
  ~FullAcceptQueue() {
    for (int fd : queued_) ::close(fd);
    ::close(listener_);
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  static int Socket() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    return fd;
  }
  static sockaddr_in Loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }
  int listener_ = -1;
  int port_ = 0;
  std::vector<int> queued_;
};

TEST_CASE("an instance that cannot accept a connection in time costs a retry, not an error",
          "[ingress]") {
  Routes routes;
  ingress::Upstreams& upstreams = routes.upstreams;
  // Six good instances and one stuck. Caddy's dynamic upstreams come from
  // an SRV lookup, which Go shuffles at each refresh (250 ms), so each try
  // meets the stuck instance by chance, 1 in 7: a request fails only when
  // five tries in a row within Caddy's 5 s each meet it and time out after
  // 1 s (1 in 7^5; with four instances, 1 in 4^5 made this test fail about
  // once in a hundred runs).
  std::vector<std::unique_ptr<Upstream>> good;
  std::vector<std::string> addresses;
  for (int i = 0; i < 6; ++i) {
    good.push_back(std::make_unique<Upstream>("from-good"));
    addresses.push_back(good.back()->address());
  }
  FullAcceptQueue stuck;
  const std::string web = Host("web");
  absl::Status set = upstreams.Set(kOwner, web, {addresses[0]});
  INFO(set.ToString());
  REQUIRE(set.ok());
  REQUIRE(AnswersWith(web, 200));
  addresses.push_back(stuck.address());
  set = upstreams.Set(kOwner, web, addresses);
  INFO(set.ToString());
  REQUIRE(set.ok());
  REQUIRE(testing::WaitFor(5s, [&] { return upstreams.Get(web)->size() == 7; }));
  std::this_thread::sleep_for(1s);  // a few of Caddy's refreshes
  // Requests until three have met the stuck instance (each took its 1 s
  // dial timeout, then a retry elsewhere), at most 200 (the chance that
  // fewer than three of 200 meet it is below 1 in 10^10): every one is
  // answered by a good instance.
  int met_stuck = 0, sent = 0;
  for (; sent < 200 && met_stuck < 3; ++sent) {
    const auto start = std::chrono::steady_clock::now();
    auto r =
        http::Send({.url = absl::StrCat("http://", testing::RequireEnv("C2D_TEST_CADDY_HTTP"), "/"),
                    .headers = {{"Host", web}},
                    .timeout = 10s});
    REQUIRE(r.ok());
    INFO("request " << sent);
    CHECK(r->status == 200);
    CHECK(r->body == "from-good");
    if (std::chrono::steady_clock::now() - start >= 900ms) ++met_stuck;
  }
  INFO(sent << " requests");
  CHECK(met_stuck == 3);
  REQUIRE(upstreams.Remove(kOwner, web).ok());
}

TEST_CASE("bad upstreams and hostnames are refused", "[ingress]") {
  Routes routes;
  ingress::Upstreams& upstreams = routes.upstreams;
  CHECK(absl::IsInvalidArgument(upstreams.Set(kOwner, "web.demo.localhost", {"10.0.0.1:80"})));
  CHECK(absl::IsInvalidArgument(upstreams.Set(kOwner, "web.demo.localhost", {"127.0.0.1:0"})));
  CHECK(absl::IsInvalidArgument(upstreams.Set(kOwner, "Bad Host", {"127.0.0.1:80"})));
  CHECK(absl::IsInvalidArgument(upstreams.Remove(kOwner, "a..b")));
}

}  // namespace
}  // namespace c2d
