// Preview environments from signed pull request deliveries, on the real
// platform: opened -> a service <name>-pr-<n> with the parent's settings and
// sealed env, deployed from the request's head and answering at its URL;
// synchronize -> the new commit live; closed -> gone. Forks, other base
// branches and a project at its cap get none; the parent's deletion takes
// its previews along.

#include <catch2/catch.hpp>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/crypto/hash.h"
#include "libs/http/client.h"
#include "tests/integration/gateway/api_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Api;
using testing::ServiceBody;
using testing::WaitFor;

json PullRequestBody(const std::string& action, int number, const std::string& head_ref,
                     const std::string& sha, const std::string& base_ref = "main",
                     const std::string& head_repo = "acme/site") {
  return {{"action", action},
          {"number", number},
          {"pull_request",
           {{"head", {{"ref", head_ref}, {"sha", sha}, {"repo", {{"full_name", head_repo}}}}},
            {"base", {{"ref", base_ref}, {"repo", {{"full_name", "acme/site"}}}}}}}};
}

TEST_CASE("webhooks: pull requests open and update and close a preview environment",
          "[gateway][previews]") {
  // A cap of 2 live previews per project.
  Api api([](gateway::Config& g, builder::Config&) { g.previews_per_project = 2; });
  const std::string& t = api.alice();
  auto sample = testing::SampleRepo("1.0.0");
  testing::GitRepo& repo = *sample;
  const std::string project = api.Call("POST", "/v1/projects", t, json{{"name", "prs"}}).body["id"];
  json body = ServiceBody("hello", repo.path());
  body["env"] = {{"GREETING", {{"value", "Previewed"}, {"secret", true}}}};
  auto created = api.Call("POST", absl::StrCat("/v1/projects/", project, "/services"), t, body);
  REQUIRE(created.status == 201);
  const std::string parent = created.body["id"];
  const std::string secret = "pull-request-secret-0123";
  auto hook = api.Call("POST", "/v1/services/" + parent + "/webhooks", t,
                       json{{"provider", "github"}, {"secret", secret}});
  REQUIRE(hook.status == 201);
  const std::string url = hook.body["url"];
  // GitHub's headers of a pull request delivery of body `raw`, signed.
  auto signed_headers = [&](const std::string& raw, const std::string& id) {
    return std::vector<std::pair<std::string, std::string>>{
        {"X-GitHub-Event", "pull_request"},
        {"X-GitHub-Delivery", id},
        {"X-Hub-Signature-256", "sha256=" + crypto::HmacSha256Hex(secret, raw)}};
  };
  auto deliver = [&](const json& payload, const std::string& id) {
    const std::string raw = payload.dump();
    return api.Call("POST", url, "", raw, signed_headers(raw, id));
  };
  auto app = [&](const std::string& host) {
    auto r =
        http::Send({.url = absl::StrCat("http://", testing::RequireEnv("C2D_TEST_CADDY_HTTP"), "/"),
                    .headers = {{"Host", host}},
                    .timeout = 5s});
    return r.ok() && r->status == 200 ? r->body : std::string();
  };
  auto services = [&] {
    return api.Call("GET", absl::StrCat("/v1/projects/", project, "/services"), t).body["services"];
  };

  // The pull request's branch, one commit ahead of main.
  repo.Checkout("feature/login", true);
  const std::string v2 = repo.Commit({{"VERSION", "2.0.0\n"}}, "version 2");

  // Opened: a preview service, deployed from the head commit.
  auto opened = deliver(PullRequestBody("opened", 7, "feature/login", v2), "pr-1");
  REQUIRE(opened.status == 202);
  const std::string preview = opened.body["preview"]["service_id"];
  CHECK(opened.body["preview"]["name"] == "hello-pr-7");
  CHECK(opened.body["preview"]["url"] == api.Call("GET", "/v1/services/" + preview, t).body["url"]);
  auto shown = api.Call("GET", "/v1/services/" + preview, t).body;
  CHECK(shown["preview"]["of"] == parent);
  CHECK(shown["preview"]["pull_request"] == 7);
  CHECK(shown["source"]["branch"] == "feature/login");
  CHECK(shown["auto_deploy"] == false);
  // The env came along, still secret.
  auto env = api.Call("GET", "/v1/services/" + preview + "/env", t).body["env"];
  REQUIRE(env.size() == 1);
  CHECK(env[0]["key"] == "GREETING");
  CHECK(env[0]["secret"] == true);
  CHECK(env[0]["value"].is_null());
  const std::string host = "hello-pr-7.prs.localhost";
  CHECK(WaitFor(180s,
                [&] { return absl::StrContains(app(host), "Previewed from c2d! version 2.0.0"); }));
  // The parent was not deployed by any of this.
  CHECK(api.Call("GET", "/v1/services/" + parent + "/deployments", t).body["deployments"].empty());
  // A replay changes nothing.
  auto replay = deliver(PullRequestBody("opened", 7, "feature/login", v2), "pr-1");
  CHECK(replay.status == 200);
  CHECK(replay.body["status"] == "duplicate");
  CHECK(services().size() == 2);

  // Synchronize: the new head goes live on the same preview.
  const std::string v21 = repo.Commit({{"VERSION", "2.1.0\n"}}, "version 2.1");
  auto synced = deliver(PullRequestBody("synchronize", 7, "feature/login", v21), "pr-2");
  REQUIRE(synced.status == 202);
  CHECK(synced.body["preview"]["service_id"] == preview);
  CHECK(WaitFor(180s, [&] { return absl::StrContains(app(host), "version 2.1.0"); }));

  // None: from a fork, into another branch, an action that changes nothing,
  // a body of the wrong shape; and beyond the cap.
  CHECK(deliver(PullRequestBody("opened", 8, "feature/login", v21, "main", "mallory/site"), "pr-3")
            .status == 204);
  CHECK(deliver(PullRequestBody("opened", 9, "feature/login", v21, "develop"), "pr-4").status ==
        204);
  CHECK(deliver(PullRequestBody("labeled", 7, "feature/login", v21), "pr-5").status == 204);
  json typed = PullRequestBody("opened", 10, "feature/login", v21);
  typed["pull_request"]["head"] = "feature";
  auto bad = deliver(typed, "pr-6");
  CHECK(bad.status == 400);
  CHECK(bad.Field() == "pull_request.head");
  CHECK(services().size() == 2);
  // The cap is 2: a second preview is made (its build is not awaited), a
  // third is refused with the reason in the delivery log.
  CHECK(deliver(PullRequestBody("opened", 11, "feature/login", v21), "pr-7").status == 202);
  CHECK(deliver(PullRequestBody("opened", 12, "feature/login", v21), "pr-8").status == 204);
  CHECK(services().size() == 3);

  // The delivery log records the preview's URL.
  auto deliveries = api.Call("GET", "/v1/services/" + parent + "/webhook-deliveries", t);
  std::map<std::string, json> by_id;
  for (const json& d : deliveries.body["deliveries"]) by_id[d["delivery_id"]] = d;
  CHECK(by_id["pr-1"]["preview_url"] == opened.body["preview"]["url"]);
  CHECK(by_id["pr-1"]["preview_service_id"] == preview);
  // Each refusal says why.
  CHECK_THAT(by_id["pr-3"]["reason"].get<std::string>(), Catch::Contains("fork"));
  CHECK_THAT(by_id["pr-4"]["reason"].get<std::string>(), Catch::Contains("into develop"));
  CHECK_THAT(by_id["pr-5"]["reason"].get<std::string>(), Catch::Contains("labeled"));
  CHECK_THAT(by_id["pr-8"]["reason"].get<std::string>(), Catch::Contains("cap"));

  // Closed: the preview is deleted and its app stops answering.
  auto closed = deliver(PullRequestBody("closed", 7, "feature/login", v21), "pr-9");
  REQUIRE(closed.status == 200);
  CHECK(closed.body["status"] == "deleted");
  CHECK(api.Call("GET", "/v1/services/" + preview, t).status == 404);
  CHECK(WaitFor(60s, [&] { return app(host).empty(); }));
  CHECK(deliver(PullRequestBody("closed", 7, "feature/login", v21), "pr-10").status == 204);

  // At once: two new pull requests for the one place left under the cap
  // make one preview between them, the other refused with the cap's reason...
  // (Sent from threads without Catch's macros, which are not thread-safe.)
  auto at_once = [&](const std::vector<std::pair<json, std::string>>& sent) {
    std::vector<absl::StatusOr<http::Response>> got(sent.size(), absl::UnknownError("not sent"));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < sent.size(); ++i) {
      threads.emplace_back([&, i] {
        const std::string raw = sent[i].first.dump();
        http::Request req{.method = "POST",
                          .url = absl::StrCat("http://", api.address(), url),
                          .headers = signed_headers(raw, sent[i].second),
                          .body = raw,
                          .timeout = 90s};
        req.headers.emplace_back("Content-Type", "application/json");
        got[i] = http::Send(req);
      });
    }
    for (std::thread& th : threads) th.join();
    std::vector<std::pair<long, json>> out;
    for (const auto& r : got) {
      REQUIRE(r.ok());
      out.emplace_back(r->status, json::parse(r->body, nullptr, false));
    }
    return out;
  };
  auto raced = at_once({{PullRequestBody("opened", 13, "feature/login", v21), "pr-11"},
                        {PullRequestBody("opened", 14, "feature/login", v21), "pr-12"}});
  CHECK(raced[0].first + raced[1].first == 202 + 204);
  CHECK(services().size() == 3);
  const int winner = raced[0].first == 202 ? 13 : 14;
  // ...and, once it is closed, two deliveries of one pull request make one preview.
  REQUIRE(deliver(PullRequestBody("closed", winner, "feature/login", v21), "pr-13").status == 200);
  auto twice = at_once({{PullRequestBody("opened", 15, "feature/login", v21), "pr-14"},
                        {PullRequestBody("opened", 15, "feature/login", v21), "pr-15"}});
  REQUIRE(twice[0].first == 202);
  REQUIRE(twice[1].first == 202);
  CHECK(twice[0].second["preview"]["service_id"] == twice[1].second["preview"]["service_id"]);
  CHECK(services().size() == 3);

  // Deleting the parent deletes its remaining previews.
  REQUIRE(api.Call("DELETE", "/v1/services/" + parent, t).status == 204);
  CHECK(services().empty());
}

}  // namespace
}  // namespace c2d
