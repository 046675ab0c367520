// Releases over REST, end to end on the real platform: a deploy from git
// with its logs followed (SSE and WebSocket), redeploys, a rollback and a
// rename; a worker service; volumes mounted by the next deploy.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

TEST_CASE("over REST: deploy from git, follow the logs, reach the app, redeploy, roll back",
          "[gateway]") {
  Api api;
  const std::string& t = api.alice();
  auto sample = testing::SampleRepo("1.0.0");
  const testing::GitRepo& repo = *sample;
  const std::string project = api.Call("POST", "/v1/projects", t, json{{"name", "e2e"}}).body["id"];
  json body = ServiceBody("hello", repo.path());
  body["env"] = {{"GREETING", {{"value", "Hi"}, {"secret", false}}}};
  auto s = api.Call("POST", absl::StrCat("/v1/projects/", project, "/services"), t, body);
  REQUIRE(s.status == 201);
  const std::string service = s.body["id"];
  const std::string host = "hello.e2e.localhost";
  auto app = [&](const std::string& path) {
    auto r = http::Send(
        {.url = absl::StrCat("http://", testing::RequireEnv("C2D_TEST_CADDY_HTTP"), path),
         .headers = {{"Host", host}},
         .timeout = 5s});
    return r.ok() && r->status == 200 ? r->body : std::string();
  };

  auto started = api.Call("POST", "/v1/services/" + service + "/deployments", t, json::object());
  REQUIRE(started.status == 202);
  const std::string id = started.body["id"];
  auto events = api.Events("/v1/deployments/" + id + "/logs", t);
  INFO(api.deployer().db().Scalar(
      "SELECT coalesce(string_agg(state || ': ' || coalesce(failure_reason, ''), '; '), '') "
      "FROM builds"));
  REQUIRE(!events.empty());
  CHECK(events.back().event == "end");
  CHECK(events.back().data["state"] == "live");
  bool built = false, went_live = false;
  for (const auto& e : events) {
    built |= e.event == "build" && absl::StrContains(e.data.value("text", ""), "build succeeded");
    went_live |= e.event == "deploy" && e.data.value("kind", "") == "deployment.live";
  }
  CHECK(built);
  CHECK(went_live);
  // The same stream over a WebSocket, and resumed from the middle: the
  // events after the given id, each once.
  auto ids = [](const std::vector<Api::Event>& list) {
    std::vector<std::string> out;
    for (const auto& e : list) out.push_back(e.event + " " + e.id + " " + e.data.dump());
    return out;
  };
  CHECK(ids(api.WebSocketEvents("/v1/deployments/" + id + "/logs", t)) == ids(events));
  REQUIRE(events.size() > 4);
  const size_t middle = events.size() / 2;
  REQUIRE(!events[middle].id.empty());
  auto resumed = api.Events("/v1/deployments/" + id + "/logs", t, events[middle].id);
  CHECK(ids(resumed) == ids(std::vector<Api::Event>(events.begin() + middle + 1, events.end())));
  size_t first_deploy = 0;
  while (first_deploy < events.size() && events[first_deploy].event != "deploy") ++first_deploy;
  REQUIRE(first_deploy + 1 < events.size());
  CHECK(ids(api.Events("/v1/deployments/" + id + "/logs?since=" + events[first_deploy].id, t)) ==
        ids(std::vector<Api::Event>(events.begin() + first_deploy + 1, events.end())));
  CHECK(WaitFor(5s, [&] { return absl::StrContains(app("/"), "Hi from c2d! version 1.0.0"); }));
  const std::string first_release =
      api.Call("GET", "/v1/deployments/" + id, t).body["deployment"]["id"];
  // One release only: nothing to roll back to, and the answer says so.
  auto nothing = api.Call("POST", "/v1/services/" + service + "/rollback", t, json::object());
  CHECK(nothing.status == 409);
  CHECK_THAT(nothing.Error(), Catch::Contains("no earlier live release"));
  auto bad_to = api.Call("POST", "/v1/services/" + service + "/rollback", t, json{{"to", 5}});
  CHECK(bad_to.status == 400);
  CHECK(bad_to.Field() == "to");

  // An env change takes effect with a redeploy of the same commit: a build
  // of its own that releases the first build's image (no second image).
  REQUIRE(api.Call("PATCH", "/v1/services/" + service + "/env", t,
                   json{{"env", {{"GREETING", {{"value", "Hello again"}, {"secret", false}}}}}})
              .status == 200);
  auto redeploy = api.Call("POST", "/v1/services/" + service + "/deployments", t, json::object());
  REQUIRE(redeploy.status == 202);
  const std::string rebuild = redeploy.body["id"];
  CHECK(absl::StartsWith(rebuild, "bld_"));
  // The stream is the new release's own, to its end: no event of the first.
  auto again = api.Events("/v1/deployments/" + rebuild + "/logs", t);
  REQUIRE(!again.empty());
  CHECK(again.back().data["state"] == "live");
  const std::string second = again.back().data.value("deployment_id", "");
  CHECK(absl::StartsWith(second, "dep_"));
  CHECK(second != first_release);
  bool reused = false;
  for (const auto& e : again) {
    if (e.event == "deploy") CHECK(e.data["deployment_id"] == second);
    reused |=
        e.event == "build" && absl::StrContains(e.data.value("text", ""), "releasing its image");
  }
  CHECK(reused);
  CHECK(WaitFor(5s, [&] { return absl::StrContains(app("/"), "Hello again from c2d!"); }));

  // Roll back: the server picks the release before the live one, and its
  // env comes back.
  auto back = api.Call("POST", "/v1/services/" + service + "/rollback", t, json::object());
  REQUIRE(back.status == 202);
  CHECK(back.body["deployment"]["rollback_of"] == first_release);
  auto rolled = api.Events("/v1/deployments/" + back.body["id"].get<std::string>() + "/logs", t);
  CHECK(rolled.back().data["state"] == "live");
  CHECK(WaitFor(5s, [&] { return absl::StrContains(app("/"), "Hi from c2d!"); }));

  // A commit asked for by id that was built before: a release of that
  // build's image (dep_…), whose stream is its own, not the build's first.
  const std::string commit = api.Call("GET", "/v1/deployments/" + id, t).body["build"]["commit"];
  auto pinned =
      api.Call("POST", "/v1/services/" + service + "/deployments", t, json{{"commit", commit}});
  REQUIRE(pinned.status == 202);
  const std::string third = pinned.body["id"];
  CHECK(absl::StartsWith(third, "dep_"));
  auto own = api.Events("/v1/deployments/" + third + "/logs", t);
  REQUIRE(!own.empty());
  CHECK(own.back().data["deployment_id"] == third);
  CHECK(own.back().data["state"] == "live");
  for (const auto& e : own) {
    CHECK(e.event != "build");
    if (e.event == "deploy") CHECK(e.data["deployment_id"] == third);
  }
  CHECK(WaitFor(5s, [&] { return absl::StrContains(app("/"), "Hello again from c2d!"); }));

  // The replaced instances drain, then only the live one is left.
  CHECK(WaitFor(20s, [&] {
    auto instances = api.Call("GET", "/v1/services/" + service + "/instances", t);
    return instances.status == 200 && instances.body["instances"].size() == 1;
  }));
  auto list = api.Call("GET", "/v1/services/" + service + "/deployments", t);
  CHECK(list.body["deployments"].size() == 4);
  // The app's own output, as a finished stream.
  auto logs = api.Events("/v1/services/" + service + "/logs?follow=false&tail=50", t);
  bool listening = false;
  for (const auto& e : logs) {
    listening |= absl::StrContains(e.data.value("text", ""), "listening on 8080");
  }
  CHECK(listening);

  // A rename moves the routes at once; the old name stays the project's.
  auto status_of = [&](const std::string& hostname) {
    auto r =
        http::Send({.url = absl::StrCat("http://", testing::RequireEnv("C2D_TEST_CADDY_HTTP"), "/"),
                    .headers = {{"Host", hostname}},
                    .timeout = 5s});
    return r.ok() ? r->status : 0L;
  };
  REQUIRE(api.Call("PATCH", "/v1/projects/" + project, t, json{{"name", "renamed"}}).status == 200);
  CHECK(WaitFor(
      5s, [&] { return status_of("hello.renamed.localhost") == 200 && status_of(host) == 404; }));
  CHECK(api.Call("GET", "/v1/services/" + service, t)
            .body["url"]
            .get<std::string>()
            .find("hello.renamed.localhost") != std::string::npos);
  auto taken = api.Call("POST", "/v1/projects", api.bob(), json{{"name", "e2e"}});
  CHECK(taken.status == 409);
  CHECK_THAT(taken.Error(), Catch::Contains("held for that project until"));
  // Its own old name it may take back.
  CHECK(api.Call("PATCH", "/v1/projects/" + project, t, json{{"name", "e2e"}}).status == 200);
  CHECK(WaitFor(5s, [&] { return status_of(host) == 200; }));
}

// examples/hello-worker as a repository of its own.
std::unique_ptr<testing::GitRepo> WorkerRepo() {
  const std::filesystem::path dir = std::filesystem::path(C2D_SOURCE_DIR) / "examples/hello-worker";
  auto read = [&](const char* name) {
    std::ifstream in(dir / name);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  return std::make_unique<testing::GitRepo>(
      std::initializer_list<std::pair<std::string, std::string>>{
          {"main.py", read("main.py")},
          {"Procfile", read("Procfile")},
          {"requirements.txt", read("requirements.txt")}});
}

TEST_CASE("a worker goes live after its start period and logs and restarts and has no hostname",
          "[gateway]") {
  Api api;
  const std::string& t = api.alice();
  auto repo = WorkerRepo();
  const std::string project =
      api.Call("POST", "/v1/projects", t, json{{"name", "jobs"}}).body["id"];
  auto s = api.Call("POST", "/v1/projects/" + project + "/services", t,
                    json{{"name", "ticker"},
                         {"type", "worker"},
                         {"source", {{"repo_url", repo->path()}}},
                         {"health_check", {{"start_period_s", 2}}}});
  REQUIRE(s.status == 201);
  const std::string service = s.body["id"];
  CHECK(s.body["url"].is_null());
  CHECK(s.body["health_check"] == json{{"start_period_s", 2}});
  auto deploy = [&] {
    auto d = api.Call("POST", "/v1/services/" + service + "/deployments", t, json::object());
    REQUIRE(d.status == 202);
    return api.Events("/v1/deployments/" + d.body["id"].get<std::string>() + "/logs", t);
  };
  auto events = deploy();
  REQUIRE(!events.empty());
  CHECK(events.back().data["state"] == "live");
  bool settled = false;
  for (const auto& e : events) {
    settled |= e.event == "deploy" && e.data.value("kind", "") == "instance.healthy" &&
               absl::StrContains(e.data.value("message", ""), "running for 2.0 s");
  }
  CHECK(settled);
  // Its output, as runtime logs.
  CHECK(WaitFor(20s, [&] {
    for (const auto& e : api.Events("/v1/services/" + service + "/logs?follow=false&tail=20", t)) {
      if (absl::StrContains(e.data.value("text", ""), "tick 2")) return true;
    }
    return false;
  }));
  // No hostname: the ingress has nothing for it.
  auto r =
      http::Send({.url = absl::StrCat("http://", testing::RequireEnv("C2D_TEST_CADDY_HTTP"), "/"),
                  .headers = {{"Host", "ticker.jobs.localhost"}},
                  .timeout = 5s});
  REQUIRE(r.ok());
  CHECK(r->status != 200);
  // A worker that exits after going live is restarted, like a web instance.
  REQUIRE(api.Call("PATCH", "/v1/services/" + service + "/env", t,
                   json{{"env", {{"CRASH_AFTER", {{"value", "4"}, {"secret", false}}}}}})
              .status == 200);
  CHECK(deploy().back().data["state"] == "live");
  CHECK(WaitFor(60s, [&] {
    auto list = api.Call("GET", "/v1/services/" + service + "/instances", t);
    for (const json& i : list.body["instances"]) {
      if (i["restarts"].get<int>() >= 1) return true;
    }
    return false;
  }));
}

TEST_CASE("volumes over REST: mounted by the next deploy, deleted once unused", "[gateway]") {
  Api api;
  const std::string& t = api.alice();
  auto sample = testing::SampleRepo("1.0.0");
  const testing::GitRepo& repo = *sample;
  const std::string project =
      api.Call("POST", "/v1/projects", t, json{{"name", "vols"}}).body["id"];
  const std::string service = api.Call("POST", absl::StrCat("/v1/projects/", project, "/services"),
                                       t, ServiceBody("hello", repo.path()))
                                  .body["id"];
  const std::string volumes = "/v1/services/" + service + "/volumes";
  auto created = api.Call("POST", volumes, t, json{{"name", "data"}, {"mount_path", "/data"}});
  REQUIRE(created.status == 201);
  CHECK(created.body["state"] == "pending");
  CHECK(created.body["size_gb"] == 1);
  const std::string volume = created.body["id"];
  CHECK(api.Call("POST", volumes, t, json{{"name", "data"}, {"mount_path", "/other"}}).status ==
        409);
  // A volume is mounted by one instance.
  auto scale =
      api.Call("PATCH", "/v1/services/" + service, t, json{{"run", {{"instance_count", 2}}}});
  CHECK(scale.status == 400);
  CHECK(scale.Field() == "run.instance_count");

  auto deploy = [&] {
    auto d = api.Call("POST", "/v1/services/" + service + "/deployments", t, json::object());
    REQUIRE(d.status == 202);
    auto events = api.Events("/v1/deployments/" + d.body["id"].get<std::string>() + "/logs", t);
    REQUIRE(!events.empty());
    return events.back().data.value("state", "");
  };
  REQUIRE(deploy() == "live");
  auto state = [&] {
    auto list = api.Call("GET", volumes, t);
    return list.body["volumes"].size() == 1 ? list.body["volumes"][0].value("state", "") : "";
  };
  CHECK(state() == "attached");
  const fs::path dir = fs::path(api.deployer().config().local.volumes_dir) /
                       absl::AsciiStrToLower(absl::StrCat("vol-", volume.substr(4)));
  CHECK(fs::is_directory(dir));

  // Deleted while mounted: kept until a release without it is live.
  auto deleted = api.Call("DELETE", "/v1/volumes/" + volume, t);
  REQUIRE(deleted.status == 200);
  CHECK(deleted.body["state"] == "deleting");
  CHECK_THAT(deleted.body.value("note", ""), Catch::Contains("once a release without it"));
  REQUIRE(deploy() == "live");
  // Gone from the list, and its directory from the host.
  CHECK(WaitFor(30s, [&] { return api.Call("GET", volumes, t).body["volumes"].empty(); }));
  CHECK(!fs::exists(dir));
  CHECK(api.Call("PATCH", "/v1/services/" + service, t, json{{"run", {{"instance_count", 2}}}})
            .status == 200);
  // With two instances, no new volume.
  auto refused = api.Call("POST", volumes, t, json{{"name", "more"}, {"mount_path", "/more"}});
  CHECK(refused.status == 409);
  CHECK(refused.Field() == "run.instance_count");
  CHECK(api.Call("DELETE", "/v1/volumes/vol_01ABCDEFGHJKMNPQRSTVWXYZ00", t).status == 404);
  auto metrics = api.Call("GET", "/v1/services/" + service + "/metrics", t);
  REQUIRE(metrics.status == 200);
  CHECK(metrics.body["recent_deployments"]["count"] == 2);
  CHECK(metrics.body["instances"]["healthy"].get<int>() >= 1);
  CHECK(metrics.body["live_deployment_id"].is_string());
}

}  // namespace
}  // namespace c2d
