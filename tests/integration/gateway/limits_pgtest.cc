// No tenant can freeze the gateway or crowd out another: no request waits
// on git, each user's builds, requests and log streams are limited, and a
// revoked token stops working at once.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/http/client.h"
#include "tests/integration/gateway/api_fixture.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using testing::Api;
using testing::ServiceBody;
using testing::WaitFor;

// A "repository" whose HEAD is a named pipe: git blocks on it for good.
class HangingRepo {
 public:
  HangingRepo() : path_(fs::path(testing::LocalRepoRoot()) / ids::New("hang")) {
    fs::create_directories(path_ / "objects");
    fs::create_directories(path_ / "refs");
    REQUIRE(mkfifo((path_ / "HEAD").c_str(), 0644) == 0);
  }
  ~HangingRepo() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

// An HTTP request on a socket of its own, left open: the status of a
// streaming answer, and the socket to close.
struct OpenStream {
  int fd = -1;
  long status = 0;
  ~OpenStream() {
    if (fd >= 0) close(fd);
  }
};

std::unique_ptr<OpenStream> Open(const std::string& address, const std::string& path,
                                 const std::string& token) {
  auto s = std::make_unique<OpenStream>();
  const size_t colon = address.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(s->fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return s;
  const std::string req =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ", token,
                   "\r\nAccept: text/event-stream\r\n\r\n");
  if (write(s->fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) return s;
  std::string got;
  char buf[512];
  while (got.find("\r\n") == std::string::npos) {
    ssize_t n = read(s->fd, buf, sizeof(buf));
    if (n <= 0) return s;
    got.append(buf, static_cast<size_t>(n));
  }
  // "HTTP/1.1 200 OK"
  (void)absl::SimpleAtoi(got.substr(9, 3), &s->status);
  return s;
}

TEST_CASE("a repository that never answers freezes no request and each user's builds are limited",
          "[gateway][limits]") {
  Api api([](gateway::Config&, builder::Config& b) { b.max_builds_per_user = 3; });
  HangingRepo hang;
  const std::string& t = api.alice();
  const std::string project =
      api.Call("POST", "/v1/projects", t, json{{"name", "frozen"}}).body["id"];
  auto s =
      api.Call("POST", "/v1/projects/" + project + "/services", t, ServiceBody("web", hang.path()));
  REQUIRE(s.status == 201);
  const std::string url = absl::StrCat("http://", api.address(), "/v1/services/",
                                       s.body["id"].get<std::string>(), "/deployments");

  // Twelve at once: every one answered (none waits on git), three accepted.
  std::vector<std::future<absl::StatusOr<http::Response>>> posts;
  for (int i = 0; i < 12; ++i) {
    posts.push_back(std::async(std::launch::async, [&] {
      return http::Send(
          {.method = "POST",
           .url = url,
           .headers = {{"Authorization", "Bearer " + t}, {"Content-Type", "application/json"}},
           .body = "{}",
           .timeout = 20s});
    }));
  }
  int accepted = 0, limited = 0;
  std::string build;
  for (auto& f : posts) {
    auto r = f.get();
    REQUIRE(r.ok());
    INFO(r->status << " " << r->body);
    if (r->status == 202) {
      ++accepted;
      json b = json::parse(r->body);
      CHECK(b["build"]["state"] != "failed");  // queued, or running: resolving
      CHECK(b["build"]["commit"].is_null());   // resolved by the build job
      build = b["id"];
    } else {
      CHECK(r->status == 429);
      CHECK_THAT(r->body, Catch::Contains("the limit is 3"));
      CHECK(!r->Header("Retry-After").empty());
      ++limited;
    }
  }
  CHECK(accepted == 3);
  CHECK(limited == 9);
  // While git hangs in three builds, the gateway serves everyone.
  CHECK(api.Call("GET", "/healthz", "").status == 200);
  CHECK(api.Call("GET", "/v1/projects", api.bob()).status == 200);
  auto view = api.Call("GET", "/v1/deployments/" + build, t);
  CHECK(view.status == 200);
  CHECK(view.body["deployment"].is_null());
  // Another user is not limited by Alice's builds.
  const std::string bob_project =
      api.Call("POST", "/v1/projects", api.bob(), json{{"name", "calm"}}).body["id"];
  auto bob_service = api.Call("POST", "/v1/projects/" + bob_project + "/services", api.bob(),
                              ServiceBody("web", hang.path()));
  REQUIRE(bob_service.status == 201);
  CHECK(api.Call("POST",
                 "/v1/services/" + bob_service.body["id"].get<std::string>() + "/deployments",
                 api.bob(), json::object())
            .status == 202);
}

TEST_CASE("a user over the request rate gets 429 with Retry-After and others do not",
          "[gateway][limits]") {
  Api api([](gateway::Config& g, builder::Config&) {
    g.user_rps = 1;
    g.user_burst = 5;
  });
  for (int i = 0; i < 5; ++i) CHECK(api.Call("GET", "/v1/projects", api.alice()).status == 200);
  auto over = api.Call("GET", "/v1/projects", api.alice());
  CHECK(over.status == 429);
  CHECK_THAT(over.Error(), Catch::Contains("requests per second"));
  int retry = 0;
  CHECK(absl::SimpleAtoi(over.Header("retry-after"), &retry));
  CHECK(retry >= 1);
  CHECK(api.Call("GET", "/v1/projects", api.bob()).status == 200);
  // The bucket refills.
  CHECK(WaitFor(5s, [&] { return api.Call("GET", "/v1/projects", api.alice()).status == 200; }));
}

TEST_CASE("a user's open log streams are limited and another user's stream still opens",
          "[gateway][limits]") {
  Api api([](gateway::Config& g, builder::Config&) { g.user_streams = 2; });
  testing::GitRepo repo({{"README", "x\n"}});
  auto service_of = [&](const std::string& token, const std::string& name) {
    const std::string p = api.Call("POST", "/v1/projects", token, json{{"name", name}}).body["id"];
    return api
        .Call("POST", "/v1/projects/" + p + "/services", token, ServiceBody("web", repo.path()))
        .body["id"]
        .get<std::string>();
  };
  const std::string mine = service_of(api.alice(), "streams"),
                    theirs = service_of(api.bob(), "other");
  const std::string path = "/v1/services/" + mine + "/logs?follow=true";
  auto first = Open(api.address(), path, api.alice());
  auto second = Open(api.address(), path, api.alice());
  CHECK(first->status == 200);
  CHECK(second->status == 200);
  auto third = api.Call("GET", path, api.alice());
  CHECK(third.status == 429);
  CHECK_THAT(third.Error(), Catch::Contains("log streams open"));
  auto bobs = Open(api.address(), "/v1/services/" + theirs + "/logs?follow=true", api.bob());
  CHECK(bobs->status == 200);
  // A stream closed gives its slot back.
  first.reset();
  CHECK(WaitFor(10s, [&] { return Open(api.address(), path, api.alice())->status == 200; }));
}

TEST_CASE(
    "a revoked token or a disabled user is refused at once rather than after the cache's minute",
    "[gateway][limits]") {
  Api api;
  const std::string token = api.Token("carol@example.com");
  CHECK(api.Call("GET", "/v1/projects", token).status == 200);  // cached now
  api.deployer().db().Exec(
      "UPDATE api_tokens SET revoked_at = now() WHERE user_id = "
      "(SELECT id FROM users WHERE email = 'carol@example.com')");
  CHECK(WaitFor(10s, [&] { return api.Call("GET", "/v1/projects", token).status == 401; }));

  const std::string other = api.Token("dave@example.com");
  CHECK(api.Call("GET", "/v1/projects", other).status == 200);
  api.deployer().db().Exec("UPDATE users SET disabled_at = now() WHERE email = 'dave@example.com'");
  CHECK(WaitFor(10s, [&] { return api.Call("GET", "/v1/projects", other).status == 401; }));
  // Other users' cached tokens keep working.
  CHECK(api.Call("GET", "/v1/projects", api.alice()).status == 200);
}

}  // namespace
}  // namespace c2d
