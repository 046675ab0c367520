// The REST API's resources: tokens, the OpenAPI document, validation,
// sealed env vars, tenants, webhooks, sealed repository URLs, name holds
// and idempotency. Releases over REST (a deploy from git, workers,
// volumes): releases_pgtest.cc.

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/log.h"
#include "libs/crypto/hash.h"
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

TEST_CASE("requests without a valid token are refused", "[gateway]") {
  Api api;
  CHECK(api.Call("GET", "/v1/projects", "").status == 401);
  CHECK(api.Call("GET", "/v1/projects", "c2d_not-a-token").status == 401);
  auto r = api.Call("GET", "/v1/projects", "", "", {{"Authorization", "Basic YWxpY2U6eA=="}});
  CHECK(r.status == 401);
  CHECK_THAT(r.Error(), Catch::Contains("Bearer"));
  CHECK(api.Call("GET", "/healthz", "").status == 200);
}

TEST_CASE("the OpenAPI document describes exactly the routes served", "[gateway]") {
  Api api;
  auto doc = api.Call("GET", "/v1/openapi.json", "");
  REQUIRE(doc.status == 200);
  CHECK(doc.body["openapi"] == "3.1.0");
  std::set<std::string> documented, served;
  for (const auto& [path, ops] : doc.body["paths"].items()) {
    for (const auto& [method, unused] : ops.items()) {
      documented.insert(absl::AsciiStrToUpper(method) + " " + path);
    }
  }
  for (const auto& [method, pattern] : api.router().Routes()) served.insert(method + " " + pattern);
  CHECK(documented == served);
}

TEST_CASE("projects and services: validation names the field and changes nothing", "[gateway]") {
  Api api;
  const std::string& t = api.alice();
  auto p = api.Call("POST", "/v1/projects", t, json{{"name", "demo"}});
  REQUIRE(p.status == 201);
  CHECK(p.body["role"] == "owner");
  const std::string project = p.body["id"];
  CHECK(api.Call("POST", "/v1/projects", t, json{{"name", "demo"}}).status == 409);

  const std::string services = absl::StrCat("/v1/projects/", project, "/services");
  const int64_t before = api.Rows("services");
  struct Bad {
    std::string body;
    long status;
    std::string field;
  };
  for (
      const Bad& b : std::vector<Bad>{
          {"{not json", 400, ""},
          {"[1,2]", 400, ""},
          {R"({"name":"web","source":{"repo_url":"https://g.example/x"},"colour":"red"})", 400,
           "colour"},
          {R"({"name":7,"source":{"repo_url":"https://g.example/x"}})", 400, "name"},
          {R"({"name":"Web!","source":{"repo_url":"https://g.example/x"}})", 400, "name"},
          {R"({"name":"web"})", 400, "source.repo_url"},
          {R"({"name":"web","source":{"repo_url":"https://g.example/x","branch":"a..b"}})", 400,
           "source.branch"},
          {R"({"name":"web","source":{"repo_url":"https://g.example/x"},"run":{"instance_count":21}})",
           400, "run.instance_count"},
          {R"({"name":"web","source":{"repo_url":"https://g.example/x"},"run":{"port":"80"}})", 400,
           "run.port"},
          {R"({"name":"web","source":{"repo_url":"https://g.example/x"},"health_check":{"timeout_s":20}})",
           400, "health_check.timeout_s"},
          {R"({"name":"web","source":{"repo_url":"https://g.example/x"},"env":{"PORT":"1"}})", 400,
           "env.PORT"},
      }) {
    auto r = api.Call("POST", services, t, b.body);
    INFO(b.body);
    CHECK(r.status == b.status);
    CHECK(r.Field() == b.field);
  }
  // Oversize bodies are cut off before they are read.
  CHECK(api.Call("POST", services, t, std::string(2 << 20, ' ')).status == 413);
  CHECK(api.Rows("services") == before);

  auto s = api.Call("POST", services, t, ServiceBody("web", "https://g.example/repo"));
  REQUIRE(s.status == 201);
  CHECK(s.body["run"]["instance_count"] == 1);
  CHECK(s.body["health_check"]["path"] == "/health");
  CHECK(s.body["url"].get<std::string>().find("http://web.demo.localhost") == 0);
  const std::string id = s.body["id"];
  auto patched = api.Call("PATCH", "/v1/services/" + id, t, json{{"run", {{"instance_count", 2}}}});
  REQUIRE(patched.status == 200);
  CHECK(patched.body["run"]["instance_count"] == 2);
  CHECK(patched.body["revision"] == 2);
  CHECK(api.Call("GET", services, t).body["services"].size() == 1);
}

// What the process writes to stderr (where the log goes) while it lives.
class StderrCapture {
 public:
  StderrCapture() : path_(fs::temp_directory_path() / absl::StrCat("c2d-stderr-", getpid())) {
    std::fflush(stderr);
    saved_ = dup(2);
    int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    dup2(fd, 2);
    close(fd);
  }
  ~StderrCapture() { Stop(); }
  std::string Stop() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      dup2(saved_, 2);
      close(saved_);
      saved_ = -1;
    }
    std::ifstream in(path_);
    std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    fs::remove(path_);
    return out;
  }

 private:
  fs::path path_;
  int saved_ = -1;
};

TEST_CASE("env values are sealed, masked, revealed on request and audited", "[gateway]") {
  Api api;
  log::Init("gateway", log::Level::kDebug);
  StderrCapture log_lines;
  const std::string& t = api.alice();
  const std::string project =
      api.Call("POST", "/v1/projects", t, json{{"name", "envs"}}).body["id"];
  auto s = api.Call("POST", absl::StrCat("/v1/projects/", project, "/services"), t,
                    ServiceBody("web", "https://g.example/repo"));
  const std::string env = absl::StrCat("/v1/services/", s.body["id"].get<std::string>(), "/env");
  REQUIRE(api.Call("PUT", env, t,
                   json{{"env",
                         {{"GREETING", {{"value", "hi"}, {"secret", false}}},
                          {"API_KEY", "s3cr3t-value"}}}})
              .status == 200);
  auto listed = api.Call("GET", env, t);
  REQUIRE(listed.status == 200);
  CHECK(listed.raw.find("s3cr3t-value") == std::string::npos);
  std::map<std::string, json> by_key;
  for (const json& v : listed.body["env"]) by_key[v["key"]] = v;
  CHECK(by_key["GREETING"]["value"] == "hi");
  CHECK(by_key["API_KEY"]["value"].is_null());
  CHECK(by_key["API_KEY"]["secret"] == true);
  // At rest: no plain value in the table.
  CHECK(api.deployer().db().Count("SELECT count(*) FROM env_vars WHERE "
                                  "position('s3cr3t' in encode(ciphertext, 'escape')) > 0") == 0);
  auto revealed = api.Call("GET", env + "?reveal=true", t);
  CHECK(revealed.raw.find("s3cr3t-value") != std::string::npos);
  CHECK(api.deployer().db().Count("SELECT count(*) FROM audit_log WHERE action = 'env.reveal'") ==
        1);
  CHECK(api.deployer().db().Count(
            "SELECT count(*) FROM audit_log WHERE details::text LIKE '%s3cr3t%'") == 0);
  REQUIRE(api.Call("PATCH", env, t, json{{"env", {{"GREETING", nullptr}}}}).status == 200);
  CHECK(api.Call("GET", env, t).body["env"].size() == 1);
  CHECK(api.Call("DELETE", env + "/API_KEY", t).status == 204);
  CHECK(api.Call("DELETE", env + "/API_KEY", t).status == 404);
  // Whatever was logged meanwhile (debug included): never the value.
  const std::string logged = log_lines.Stop();
  CHECK(absl::StrContains(logged, "\"level\""));
  CHECK(!absl::StrContains(logged, "s3cr3t"));
}

TEST_CASE("another tenant's ids answer 404 and a viewer cannot change anything", "[gateway]") {
  Api api;
  const std::string& alice = api.alice();
  const std::string& bob = api.bob();
  const std::string project =
      api.Call("POST", "/v1/projects", alice, json{{"name", "mine"}}).body["id"];
  const std::string service = api.Call("POST", absl::StrCat("/v1/projects/", project, "/services"),
                                       alice, ServiceBody("web", "https://g.example/repo"))
                                  .body["id"];
  const int64_t audit = api.Rows("audit_log");
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/projects/" + project},
           {"PATCH", "/v1/projects/" + project},
           {"DELETE", "/v1/projects/" + project},
           {"GET", "/v1/projects/" + project + "/members"},
           {"GET", "/v1/projects/" + project + "/services"},
           {"POST", "/v1/projects/" + project + "/services"},
           {"GET", "/v1/services/" + service},
           {"PATCH", "/v1/services/" + service},
           {"DELETE", "/v1/services/" + service},
           {"GET", "/v1/services/" + service + "/env"},
           {"PUT", "/v1/services/" + service + "/env"},
           {"POST", "/v1/services/" + service + "/deployments"},
           {"GET", "/v1/services/" + service + "/deployments"},
           {"GET", "/v1/services/" + service + "/instances"},
           {"GET", "/v1/services/" + service + "/logs"}}) {
    const std::string body = method == "GET" || method == "DELETE" ? "" : "{\"name\":\"x\"}";
    auto r = api.Call(method, path, bob, body);
    INFO(method << " " << path);
    CHECK(r.status == 404);
  }
  CHECK(api.Rows("audit_log") == audit);

  // Bob as a viewer: reads work, changes are refused.
  REQUIRE(api.Call("POST", "/v1/projects/" + project + "/members", alice,
                   json{{"email", "bob@example.com"}, {"role", "viewer"}})
              .status == 201);
  CHECK(api.Call("GET", "/v1/services/" + service, bob).status == 200);
  CHECK(api.Call("PATCH", "/v1/services/" + service, bob, json{{"run", {{"instance_count", 3}}}})
            .status == 403);
  CHECK(api.Call("PUT", "/v1/services/" + service + "/env", bob, json{{"env", {{"A", "b"}}}})
            .status == 403);
  CHECK(api.Call("GET", "/v1/services/" + service + "/env?reveal=true", bob).status == 403);
  CHECK(api.Call("POST", "/v1/services/" + service + "/deployments", bob, json::object()).status ==
        403);
  CHECK(api.Call("DELETE", "/v1/projects/" + project, bob).status == 403);
}

TEST_CASE("webhooks: a signed push builds once, forged, replayed and other pushes do not",
          "[gateway]") {
  Api api;
  const std::string& t = api.alice();
  testing::GitRepo repo({{"index.html", "hi\n"}});
  const std::string project =
      api.Call("POST", "/v1/projects", t, json{{"name", "hooks"}}).body["id"];
  const std::string service = api.Call("POST", absl::StrCat("/v1/projects/", project, "/services"),
                                       t, ServiceBody("site", repo.path()))
                                  .body["id"];
  const std::string secret = "It's a Secret to Everybody";
  auto hook = api.Call("POST", "/v1/services/" + service + "/webhooks", t,
                       json{{"provider", "github"}, {"secret", secret}});
  REQUIRE(hook.status == 201);
  const std::string url = hook.body["url"];
  CHECK(api.Call("GET", "/v1/services/" + service + "/webhooks", t).raw.find(secret) ==
        std::string::npos);
  auto push = [&](const std::string& body, const std::string& signature, const std::string& id,
                  const std::string& event = "push") {
    return api.Call(
        "POST", url, "", body,
        {{"X-GitHub-Event", event}, {"X-GitHub-Delivery", id}, {"X-Hub-Signature-256", signature}});
  };
  const std::string payload = json{{"ref", "refs/heads/main"}, {"after", repo.head()}}.dump();
  const std::string signature = "sha256=" + crypto::HmacSha256Hex(secret, payload);
  auto builds = [&] {
    return api.deployer().db().Count("SELECT count(*) FROM builds WHERE service_id = '" + service +
                                     "'");
  };

  // GitHub's published example (docs.github.com, "Validating webhook
  // deliveries") verifies; with one bit of the payload changed it does not.
  const std::string published =
      "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
  CHECK(push("Hello, World!", published, "example", "ping").status == 204);
  CHECK(push("Iello, World!", published, "example-forged", "ping").status == 401);
  // Forged: the body changed by one character, or a wrong key.
  std::string forged = payload;
  forged[forged.find("main")] ^= 1;
  CHECK(push(forged, signature, "d0").status == 401);
  CHECK(
      push(payload, "sha256=" + crypto::HmacSha256Hex("another secret!!", payload), "d0").status ==
      401);
  CHECK(api.Rows("webhook_deliveries") == 1);  // the example's ping
  // Whoever knows the URL cannot spend the hook's rate limit (20) without
  // the secret; a signed body of the wrong shape is the sender's error.
  for (int i = 0; i < 30; ++i) {
    CHECK(push(payload, "sha256=" + std::string(64, '0'), absl::StrCat("f", i)).status == 401);
  }
  const std::string typed = R"({"ref":123,"after":"x"})";
  auto bad = push(typed, "sha256=" + crypto::HmacSha256Hex(secret, typed), "t1");
  CHECK(bad.status == 400);
  CHECK(bad.Field() == "ref");
  CHECK(api.Rows("webhook_deliveries") == 1);

  auto accepted = push(payload, signature, "d1");
  REQUIRE(accepted.status == 202);
  CHECK(accepted.body["status"] == "accepted");
  auto replay = push(payload, signature, "d1");
  CHECK(replay.status == 200);
  CHECK(replay.body["status"] == "duplicate");
  CHECK(builds() == 1);

  const std::string other = json{{"ref", "refs/heads/feature"}, {"after", repo.head()}}.dump();
  CHECK(push(other, "sha256=" + crypto::HmacSha256Hex(secret, other), "d2").status == 204);
  CHECK(push("{}", "sha256=" + crypto::HmacSha256Hex(secret, "{}"), "d3", "ping").status == 204);
  CHECK(builds() == 1);
  auto deliveries = api.Call("GET", "/v1/services/" + service + "/webhook-deliveries", t);
  REQUIRE(deliveries.status == 200);
  std::multiset<std::string> outcomes;
  for (const json& d : deliveries.body["deliveries"]) outcomes.insert(d["outcome"]);
  CHECK(outcomes == std::multiset<std::string>{"accepted", "ignored", "ignored", "ignored"});

  // GitLab: the token header, compared in constant time.
  auto gitlab = api.Call("POST", "/v1/services/" + service + "/webhooks", t,
                         json{{"provider", "gitlab"}, {"secret", "gitlab-token-0123456789"}});
  REQUIRE(gitlab.status == 201);
  const std::string gl = gitlab.body["url"];
  CHECK(api.Call("POST", gl, "", payload,
                 {{"X-Gitlab-Event", "Push Hook"},
                  {"X-Gitlab-Event-UUID", "g1"},
                  {"X-Gitlab-Token", "wrong"}})
            .status == 401);
  CHECK(api.Call("POST", gl, "", payload,
                 {{"X-Gitlab-Event", "Push Hook"},
                  {"X-Gitlab-Event-UUID", "g1"},
                  {"X-Gitlab-Token", "gitlab-token-0123456789"}})
            .status == 202);
  CHECK(builds() == 1);  // the same commit: the same build
  CHECK(
      api.Call("POST", "/v1/webhooks/github/hook_01ABCDEFGHJKMNPQRSTVWXYZ00", "", payload).status ==
      404);
}

TEST_CASE("credentials in a repository URL are stored sealed and shown masked", "[gateway]") {
  Api api;
  const std::string& t = api.alice();
  const std::string token = "ghp_0123456789abcdefSECRET";
  const std::string url = "https://x-access-token:" + token + "@git.example.com/o/r.git";
  const std::string masked = "https://***@git.example.com/o/r.git";
  const std::string project =
      api.Call("POST", "/v1/projects", t, json{{"name", "creds"}}).body["id"];
  auto s = api.Call("POST", "/v1/projects/" + project + "/services", t, ServiceBody("web", url));
  REQUIRE(s.status == 201);
  const std::string service = s.body["id"];
  CHECK(s.body["source"]["repo_url"] == masked);
  auto leaks = [&] {
    std::vector<std::string> where;
    for (const auto& [table, rows] : api.Snapshot()) {
      if (absl::StrContains(rows, token)) where.push_back(table);
    }
    for (const std::string& path :
         {"/v1/services/" + service, "/v1/projects/" + project + "/services"}) {
      if (absl::StrContains(api.Call("GET", path, t).raw, token)) where.push_back(path);
    }
    return where;
  };
  CHECK(leaks().empty());
  auto sealed = [&] {
    return api.Rows("services WHERE id = '" + service + "' AND repo_url_sealed IS NOT NULL");
  };
  CHECK(sealed() == 1);
  // The masked URL sent back unchanged keeps the credentials.
  auto patch = [&](const std::string& repo_url) {
    json body;
    body["source"]["repo_url"] = repo_url;
    return api.Call("PATCH", "/v1/services/" + service, t, body).status;
  };
  REQUIRE(patch(masked) == 200);
  CHECK(sealed() == 1);
  // A deploy hands the builder the whole URL, and the build keeps it sealed
  // too (this host does not resolve: the build fails, without the token).
  auto d = api.Call("POST", "/v1/services/" + service + "/deployments", t, json::object());
  REQUIRE(d.status == 202);
  CHECK(WaitFor(60s, [&] {
    auto v = api.Call("GET", "/v1/deployments/" + d.body["id"].get<std::string>(), t);
    return v.body["build"]["state"] == "failed";
  }));
  CHECK(api.Rows("builds WHERE repo_url_sealed IS NOT NULL AND repo_url = '" + masked + "'") == 1);
  CHECK(leaks().empty());
  // Without credentials, nothing stays sealed.
  REQUIRE(patch("https://git.example.com/o/r.git") == 200);
  CHECK(sealed() == 0);
}

TEST_CASE("a lapsed name hold frees the name and goes at the next rename", "[gateway]") {
  Api api([](gateway::Config& g, builder::Config&) { g.rename_hold = 1500ms; });
  const std::string project =
      api.Call("POST", "/v1/projects", api.alice(), json{{"name", "first"}}).body["id"];
  REQUIRE(
      api.Call("PATCH", "/v1/projects/" + project, api.alice(), json{{"name", "second"}}).status ==
      200);
  CHECK(api.Rows("project_name_holds") == 1);
  CHECK(api.Call("POST", "/v1/projects", api.bob(), json{{"name", "first"}}).status == 409);
  std::this_thread::sleep_for(2s);
  CHECK(api.Call("POST", "/v1/projects", api.bob(), json{{"name", "first"}}).status == 201);
  REQUIRE(
      api.Call("PATCH", "/v1/projects/" + project, api.alice(), json{{"name", "third"}}).status ==
      200);
  // Only the hold on "second" is left.
  CHECK(api.Rows("project_name_holds") == 1);
}

TEST_CASE("an Idempotency-Key replays the first answer", "[gateway]") {
  Api api;
  const std::string& t = api.alice();
  const int64_t before = api.Rows("projects");
  auto first =
      api.Call("POST", "/v1/projects", t, R"({"name":"once"})", {{"Idempotency-Key", "k1"}});
  auto again =
      api.Call("POST", "/v1/projects", t, R"({"name":"once"})", {{"Idempotency-Key", "k1"}});
  CHECK(first.status == 201);
  CHECK(again.status == 201);
  CHECK(again.body["id"] == first.body["id"]);
  CHECK(api.Call("POST", "/v1/projects", t, R"({"name":"other"})", {{"Idempotency-Key", "k1"}})
            .status == 422);
  // One project made, by the first call alone.
  CHECK(api.Rows("projects") == before + 1);
  CHECK(api.Rows("projects WHERE name = 'other'") == 0);
}

}  // namespace
}  // namespace c2d
