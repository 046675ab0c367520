// The REST API's refusals, route by route: missing and bad tokens, another
// tenant's ids, each role against each mutation, and each class of bad
// input, each time checking that PostgreSQL holds exactly what it held.

#include <catch2/catch.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "libs/http/client.h"
#include "tests/integration/gateway/api_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Api;
using testing::ServiceBody;
using testing::WaitFor;

// Routes that take no token: health, metrics, the API's description, and
// webhook deliveries (signed by the hook's secret instead).
const std::set<std::string> kPublic = {"GET /healthz", "GET /readyz", "GET /metrics",
                                       "GET /v1/openapi.json",
                                       "POST /v1/webhooks/{provider}/{hook}",
                                       // the dashboard's static files
                                       "GET /", "GET /assets/{file}"};

// Alice's project with one service, one env var, one webhook, one volume
// and one finished (failed) build, plus a member of each role.
struct Tenant {
  explicit Tenant(Api& api) : repo({{"README", "nothing to build here\n"}}) {
    const std::string& t = api.alice();
    project = api.Call("POST", "/v1/projects", t, json{{"name", "acme"}}).body["id"];
    service = api.Call("POST", "/v1/projects/" + project + "/services", t,
                       ServiceBody("web", repo.path()))
                  .body["id"];
    REQUIRE(!service.empty());
    REQUIRE(api.Call("PUT", "/v1/services/" + service + "/env", t, json{{"env", {{"A", "1"}}}})
                .status == 200);
    REQUIRE(
        api.Call("POST", "/v1/services/" + service + "/webhooks", t, json{{"provider", "github"}})
            .status == 201);
    auto started = api.Call("POST", "/v1/services/" + service + "/deployments", t, json::object());
    REQUIRE(started.status == 202);
    deployment = started.body["id"];
    // The repository has nothing to build: the build fails, and no job is
    // left running to change the tables under the checks below.
    REQUIRE(WaitFor(60s, [&] {
      auto d = api.Call("GET", "/v1/deployments/" + deployment, t);
      return d.status == 200 && d.body["build"]["state"] == "failed";
    }));
    REQUIRE(WaitFor(10s, [&] {
      return api.Rows("jobs WHERE state NOT IN ('succeeded', 'failed', 'cancelled')") == 0;
    }));
    for (const char* role : {"viewer", "developer", "admin"}) {
      const std::string email = absl::StrCat(role, "@example.com");
      tokens[role] = api.Token(email);
      REQUIRE(api.Call("POST", "/v1/projects/" + project + "/members", t,
                       json{{"email", email}, {"role", role}})
                  .status == 201);
    }
    auto v = api.Call("POST", "/v1/services/" + service + "/volumes", t,
                      json{{"name", "data"}, {"mount_path", "/data"}});
    REQUIRE(v.status == 201);
    volume = v.body["id"];
    tokens["owner"] = t;
    alice_id = api.deployer().db().Scalar("SELECT id FROM users WHERE email = 'alice@example.com'");
    bob_id = api.deployer().db().Scalar("SELECT id FROM users WHERE email = 'bob@example.com'");
  }

  // `pattern` with its captures filled in with this tenant's ids.
  std::string Path(const std::string& pattern) const {
    std::string id = project;
    if (absl::StartsWith(pattern, "/v1/services/")) id = service;
    if (absl::StartsWith(pattern, "/v1/deployments/")) id = deployment;
    if (absl::StartsWith(pattern, "/v1/volumes/")) id = volume;
    return absl::StrReplaceAll(pattern, {{"{id}", id}, {"{user}", alice_id}, {"{key}", "A"}});
  }

  testing::GitRepo repo;
  std::string project, service, deployment, volume, alice_id, bob_id;
  std::map<std::string, std::string> tokens;  // role -> token
};

TEST_CASE("every route refuses a missing or bad token and hides another tenant's ids",
          "[gateway]") {
  Api api;
  Tenant acme(api);
  const auto before = api.Snapshot();
  std::set<std::string> open;
  for (const auto& [method, pattern] : api.router().Routes()) {
    const std::string route = method + " " + pattern;
    if (kPublic.count(route)) {
      open.insert(route);
      continue;
    }
    const std::string path = acme.Path(pattern);
    const std::string body = method == "GET" || method == "DELETE" ? "" : "{}";
    INFO(route);
    auto missing = api.Call(method, path, "", body);
    CHECK(missing.status == 401);
    CHECK_THAT(missing.Error(), Catch::Contains("Authorization"));
    auto forged = api.Call(method, path, "c2d_" + std::string(43, 'A'), body);
    CHECK(forged.status == 401);
    CHECK_THAT(forged.Error(), Catch::Contains("unknown, revoked or expired"));
    // Bob's view of Alice's ids: nothing there. Routes without an id of
    // Alice's (his own project list, new projects, and the database, backup
    // and domain ids, which nobody can hold yet) have nothing to hide.
    if (pattern.find("{id}") == std::string::npos || absl::StartsWith(pattern, "/v1/databases/") ||
        absl::StartsWith(pattern, "/v1/backups/") || absl::StartsWith(pattern, "/v1/domains/")) {
      continue;
    }
    auto other = api.Call(method, path, api.bob(), body);
    CHECK(other.status == 404);
    CHECK_THAT(other.Error(), Catch::Contains("does not exist"));
  }
  // No route is open by accident.
  CHECK(open == kPublic);
  CHECK(api.Snapshot() == before);
}

TEST_CASE("each role may do what its role allows and nothing more", "[gateway]") {
  Api api;
  Tenant acme(api);
  enum Role { kViewer, kDeveloper, kAdmin, kOwner };
  const std::vector<std::string> roles = {"viewer", "developer", "admin", "owner"};
  struct Mutation {
    std::string method, pattern, body;
    Role min;
    // What a caller holding the role gets: the probe passes authorisation
    // and is then refused for its content, so nothing changes either way.
    long allowed;
    std::string path = "";  // when the pattern's default captures do not fit
  };
  const std::vector<Mutation> mutations = {
      {"PATCH", "/v1/projects/{id}", R"({"nmae":"x"})", kAdmin, 400},
      {"POST", "/v1/projects/{id}/members", R"({"email":"c@example.com","role":"emperor"})", kAdmin,
       400},
      {"DELETE", "/v1/projects/{id}/members/{user}", "", kAdmin, 404,
       acme.Path("/v1/projects/{id}/members/") + acme.bob_id},
      {"POST", "/v1/projects/{id}/services", R"({"name":"Bad Name"})", kDeveloper, 400},
      {"PATCH", "/v1/services/{id}", R"({"run":{"port":0}})", kDeveloper, 400},
      {"PUT", "/v1/services/{id}/env", R"({"env":{"1X":"y"}})", kDeveloper, 400},
      {"PATCH", "/v1/services/{id}/env", R"({"env":{"1X":"y"}})", kDeveloper, 400},
      {"DELETE", "/v1/services/{id}/env/{key}", "", kDeveloper, 404,
       acme.Path("/v1/services/{id}/env/NOPE")},
      {"POST", "/v1/services/{id}/deployments", R"({"commit":7})", kDeveloper, 400},
      {"POST", "/v1/deployments/{id}/rollback", R"({"to":"x"})", kDeveloper, 400},
      {"POST", "/v1/services/{id}/rollback", R"({"to":"x"})", kDeveloper, 400},
      {"POST", "/v1/services/{id}/webhooks", R"({"provider":"svn"})", kAdmin, 400},
      {"POST", "/v1/services/{id}/volumes", R"({"name":"logs","mount_path":"/"})", kDeveloper, 400},
  };
  const auto before = api.Snapshot();
  for (const Mutation& m : mutations) {
    for (int role = kViewer; role <= kOwner; ++role) {
      const std::string path = m.path.empty() ? acme.Path(m.pattern) : m.path;
      auto r = api.Call(m.method, path, acme.tokens[roles[role]], m.body);
      INFO(roles[role] << ": " << m.method << " " << m.pattern << " " << m.body);
      if (role < m.min) {
        CHECK(r.status == 403);
        CHECK_THAT(r.Error(), Catch::Contains("role or above"));
      } else {
        CHECK(r.status == m.allowed);
      }
    }
  }
  // Revealing secrets is a developer's right; an admin may not make an owner.
  CHECK(api.Call("GET", acme.Path("/v1/services/{id}/env?reveal=true"), acme.tokens["viewer"])
            .status == 403);
  CHECK(api.Call("POST", acme.Path("/v1/projects/{id}/members"), acme.tokens["admin"],
                 json{{"email", "d@example.com"}, {"role", "owner"}})
            .status == 403);
  // Nor demote or remove one: only owners change owners.
  auto demote = api.Call("POST", acme.Path("/v1/projects/{id}/members"), acme.tokens["admin"],
                         json{{"email", "alice@example.com"}, {"role", "viewer"}});
  CHECK(demote.status == 403);
  CHECK_THAT(demote.Error(), Catch::Contains("only an owner can change the role of an owner"));
  auto remove =
      api.Call("DELETE", acme.Path("/v1/projects/{id}/members/{user}"), acme.tokens["admin"]);
  CHECK(remove.status == 403);
  CHECK_THAT(remove.Error(), Catch::Contains("only an owner can remove an owner"));
  CHECK(api.Snapshot() == before);

  // Every mutating route is in the matrix (or is one of the routes of
  // capabilities not built yet, or deletes what the end of this test does).
  std::set<std::string> covered = {"POST /v1/projects", "DELETE /v1/volumes/{id}",
                                   "DELETE /v1/services/{id}", "DELETE /v1/projects/{id}"};
  for (const Mutation& m : mutations) covered.insert(m.method + " " + m.pattern);
  for (const auto& [method, pattern] : api.router().Routes()) {
    const std::string route = method + " " + pattern;
    if (method == "GET" || kPublic.count(route) || absl::StrContains(pattern, "database") ||
        absl::StrContains(pattern, "backup") || absl::StrContains(pattern, "domain")) {
      continue;
    }
    INFO(route);
    CHECK(covered.count(route) == 1);
  }

  // The destructive ones, for real: below the role, refused; at it, done.
  CHECK(api.Call("DELETE", acme.Path("/v1/services/{id}"), acme.tokens["developer"]).status == 403);
  CHECK(api.Call("DELETE", acme.Path("/v1/projects/{id}"), acme.tokens["admin"]).status == 403);
  CHECK(api.Snapshot() == before);
  auto deleted = api.Call("DELETE", acme.Path("/v1/volumes/{id}"), acme.tokens["admin"]);
  CHECK(deleted.status == 200);
  CHECK(deleted.body["state"] == "deleted");  // nothing mounted it
  CHECK(api.Call("DELETE", acme.Path("/v1/services/{id}"), acme.tokens["admin"]).status == 204);
  CHECK(api.Call("GET", acme.Path("/v1/services/{id}"), acme.tokens["viewer"]).status == 404);
  CHECK(api.Call("DELETE", acme.Path("/v1/projects/{id}"), acme.tokens["owner"]).status == 204);
  CHECK(api.Call("GET", acme.Path("/v1/projects/{id}"), acme.tokens["owner"]).status == 404);

  // Every change made here is in the audit log: who, what, on which
  // request, from where.
  const std::string actions = api.deployer().db().Scalar(
      "SELECT string_agg(DISTINCT action, ',' ORDER BY action) FROM audit_log WHERE "
      "actor_user_id IS NOT NULL AND actor_token_id IS NOT NULL AND request_id LIKE 'req_%' AND "
      "remote_addr = '127.0.0.1' AND project_id = '" +
      acme.project + "'");
  CHECK(actions ==
        "deployment.create,env.update,member.set,project.create,project.delete,service.create,"
        "service.delete,volume.create,volume.delete,webhook.create");
  CHECK(api.deployer().db().Count("SELECT count(*) FROM audit_log WHERE request_id IS NULL") == 0);
}

TEST_CASE("every body and query parameter is checked, and a refusal changes nothing", "[gateway]") {
  Api api;
  Tenant acme(api);
  const std::string& t = api.alice();
  struct Bad {
    std::string body;
    std::string field;  // named in the error; "" when the body as a whole is wrong
  };
  struct Endpoint {
    std::string method, pattern;
    std::vector<Bad> bad;  // beyond the classes every body endpoint gets
  };
  const std::vector<Endpoint> endpoints = {
      // Names are DNS labels: the registry and DNS refuse the rest.
      {"POST",
       "/v1/projects",
       {{R"({"name":7})", "name"},
        {R"({"name":"Acme Inc"})", "name"},
        {R"({"name":"acme-"})", "name"},
        {R"({"name":"xn--acme"})", "name"}}},
      {"PATCH",
       "/v1/projects/{id}",
       {{R"({"name":["a"]})", "name"}, {R"({"name":"-acme"})", "name"}}},
      {"POST",
       "/v1/projects/{id}/members",
       {{R"({"email":5,"role":"viewer"})", "email"},
        {R"({"email":"not an email","role":"viewer"})", "email"},
        {R"({"email":"e@example.com","role":true})", "role"}}},
      {"POST",
       "/v1/projects/{id}/services",
       {{R"({"name":"api","source":"git@x"})", "source"},
        {R"({"name":"api_2","source":{"repo_url":"https://g.example/x"}})", "name"},
        {R"({"name":"api","source":{"repo_url":"https://g.example/x"},"run":{"port":70000}})",
         "run.port"}}},
      {"PATCH",
       "/v1/services/{id}",
       {{R"({"run":{"instance_count":"2"}})", "run.instance_count"},
        {R"({"name":"web.2"})", "name"},
        {R"({"name":"web-"})", "name"},
        {R"({"health_check":{"path":"health"}})", "health_check.path"}}},
      {"PUT",
       "/v1/services/{id}/env",
       {{R"({"env":[1]})", "env"},
        {R"({"env":{"A-B":"x"}})", "env.A-B"},
        {R"({"env":{"A":{"value":1}}})", "env.A.value"}}},
      {"PATCH",
       "/v1/services/{id}/env",
       {{R"({"env":"A=1"})", "env"},
        {R"({"env":{"A":{"value":"x","secret":"yes"}}})", "env.A.secret"}}},
      {"POST",
       "/v1/services/{id}/deployments",
       {{R"({"commit":1})", "commit"}, {R"({"commit":"main"})", "commit"}}},
      {"POST", "/v1/deployments/{id}/rollback", {}},
      {"POST",
       "/v1/services/{id}/volumes",
       {{R"({"name":"logs","mount_path":"/srv/../etc"})", "mount_path"},
        {R"({"name":"logs","mount_path":"/logs","size_gb":"1"})", "size_gb"},
        {R"({"name":"logs","mount_path":"/logs","size_gb":2000})", "size_gb"},
        {R"({"name":"Logs","mount_path":"/logs"})", "name"}}},
      {"POST",
       "/v1/services/{id}/webhooks",
       {{R"({"provider":1})", "provider"},
        {R"({"provider":"gitlab","secret":"short"})", "secret"}}},
  };
  const auto before = api.Snapshot();
  for (const Endpoint& e : endpoints) {
    const std::string path = acme.Path(e.pattern);
    std::vector<Bad> bad = e.bad;
    bad.push_back({"{\"name\": ", ""});                // malformed JSON
    bad.push_back({"[\"name\"]", ""});                 // not an object
    bad.push_back({R"({"colour":"red"})", "colour"});  // unknown field
    for (const Bad& b : bad) {
      INFO(e.method << " " << e.pattern << " " << b.body);
      auto r = api.Call(e.method, path, t, b.body);
      CHECK(r.status == 400);
      CHECK(r.body["error"]["code"] == "invalid_argument");
      CHECK(r.Field() == b.field);
      CHECK(!r.Error().empty());
    }
    INFO(e.method << " " << e.pattern << " oversize");
    auto big = api.Call(e.method, path, t, std::string((1 << 20) + 1, ' '));
    CHECK(big.status == 413);
  }
  // Query parameters.
  for (const auto& [path, field] : std::vector<std::pair<std::string, std::string>>{
           {"/v1/projects?page_size=0", "page_size"},
           {"/v1/projects?page_size=ten", "page_size"},
           {acme.Path("/v1/projects/{id}/services?page_size=-1"), "page_size"},
           {acme.Path("/v1/services/{id}/deployments?page_size=1e3"), "page_size"},
           {acme.Path("/v1/services/{id}/logs?tail=100001"), "tail"},
           {acme.Path("/v1/services/{id}/logs?instance=../etc"), "instance"},
       }) {
    INFO(path);
    auto r = api.Call("GET", path, t);
    CHECK(r.status == 400);
    CHECK(r.Field() == field);
  }
  // Headers.
  CHECK(api.Call("POST", "/v1/projects", t, R"({"name":"x"})",
                 {{"Idempotency-Key", std::string(300, 'k')}})
            .status == 400);
  CHECK(api.Call("GET", "/v1/projects", "", "",
                 {{"Authorization", "Bearer " + std::string(300, 'x')}})
            .status == 401);
  // Unknown routes and methods.
  CHECK(api.Call("GET", "/v1/nothing-here", t).status == 404);
  auto wrong_method = api.Call("PUT", acme.Path("/v1/projects/{id}"), t, std::string("{}"));
  CHECK(wrong_method.status == 405);
  CHECK(api.Snapshot() == before);
}

TEST_CASE("readyz names each dependency and X-Request-Id is echoed", "[gateway]") {
  Api api;
  auto ready = api.Call("GET", "/readyz", "");
  CHECK(ready.status == 200);
  CHECK(ready.body["checks"] == json{{"postgres", "ok"}, {"builder", "ok"}, {"deployer", "ok"}});
  auto r = http::Send(
      {.url = absl::StrCat("http://", api.address(), "/v1/projects"),
       .headers = {{"Authorization", "Bearer " + api.alice()}, {"X-Request-Id", "trace-me-42"}},
       .timeout = 10s});
  REQUIRE(r.ok());
  CHECK(r->Header("X-Request-Id") == "trace-me-42");
}

}  // namespace
}  // namespace c2d
