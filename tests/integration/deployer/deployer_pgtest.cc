// The deployer against the real engine, registry, PowerDNS and Caddy: a
// built image answers at its hostname, redeploys and rollbacks switch with
// zero failed requests, failed health checks leave the old release serving,
// the reconciler heals what breaks, and bad input changes nothing.

#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "services/builder/build_job.h"
#include "services/builder/builder_service.h"
#include "tests/integration/builder/builder_fixture.h"
#include "tests/integration/deployer/deployer_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::DeployerFixture;
using testing::WaitFor;

std::string Body(DeployerFixture& f, const std::string& path = "/") {
  std::string body;
  return f.ViaIngress(path, &body) == 200 ? body : "";
}

std::multiset<std::string> Kinds(const std::vector<v1::DeploymentEvent>& events) {
  std::multiset<std::string> out;
  for (const auto& e : events) out.insert(e.kind());
  return out;
}

bool HasEvent(const std::vector<v1::DeploymentEvent>& events, const std::string& kind) {
  return Kinds(events).count(kind) > 0;
}

// Every event of the service, oldest first.
std::vector<v1::DeploymentEvent> ServiceEvents(DeployerFixture& f) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::StreamDeploymentEventsRequest req;
  req.set_service_id(f.service_id());
  auto reader = f.stub().StreamDeploymentEvents(&ctx, req);
  std::vector<v1::DeploymentEvent> out;
  v1::DeploymentEvent e;
  while (reader->Read(&e)) out.push_back(e);
  REQUIRE(reader->Finish().ok());
  return out;
}

// The ingress lists exactly the healthy instances of the live deployment.
void CheckIngressMatches(DeployerFixture& f, const std::string& live_id) {
  std::set<std::string> healthy;
  for (const v1::Instance& i : f.Instances(false, live_id)) {
    if (i.state() == v1::INSTANCE_STATE_HEALTHY)
      healthy.insert(absl::StrCat(i.host(), ":", i.port()));
  }
  // (The read itself may meet a PowerDNS busy with the other tests' writes.)
  auto listed = f.upstreams().Get(f.hostname());
  for (int i = 0; i < 10 && !listed.ok() && !absl::IsNotFound(listed.status()); ++i) {
    std::this_thread::sleep_for(500ms);
    listed = f.upstreams().Get(f.hostname());
  }
  INFO(listed.status().ToString());
  REQUIRE(listed.ok());
  CHECK(std::set<std::string>(listed->begin(), listed->end()) == healthy);
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_CASE("the bundled sample, built from git, deploys itself and answers at its hostname",
          "[deployer]") {
  DeployerFixture f;
  const fs::path sample = fs::path(C2D_SOURCE_DIR) / "examples/hello-python";
  testing::GitRepo repo({{"app.py", ReadFile(sample / "app.py")},
                         {"Procfile", ReadFile(sample / "Procfile")},
                         {"requirements.txt", ReadFile(sample / "requirements.txt")},
                         {"VERSION", "7.7.7\n"}});
  // The builder, on the same database, deploying through the fixture's deployer.
  const builder::Config bc = f.BuilderConfig();
  builder::BuilderServiceImpl builds(f.pool(), bc);
  builder::BuildJob job(f.pool(), bc);
  jobs::WorkerOptions w;
  w.queue = "builder";
  w.lease = 10s;
  w.poll_interval = 200ms;
  jobs::Worker worker(f.pool(), f.db().connect(), w);
  worker.Register("build", [&](jobs::JobContext& ctx) { return job.Run(ctx); });
  REQUIRE(worker.Start().ok());

  v1::StartBuildRequest start;
  start.set_service_id(f.service_id());
  start.mutable_source()->set_repo_url(repo.path());
  start.mutable_source()->set_branch("main");
  *start.mutable_spec() = f.Spec();
  start.set_trigger(v1::BUILD_TRIGGER_API);
  grpc::ServerContext ctx;
  v1::StartBuildResponse started;
  REQUIRE(builds.StartBuild(&ctx, &start, &started).ok());

  // The build succeeds and names the deployment it started, which goes live.
  v1::Build build;
  REQUIRE(WaitFor(180s, [&] {
    grpc::ServerContext c;
    v1::GetBuildRequest get;
    get.set_id(started.build().id());
    return builds.GetBuild(&c, &get, &build).ok() && !build.deployment_id().empty();
  }));
  CHECK(build.state() == v1::BUILD_STATE_SUCCEEDED);
  v1::Deployment d = f.WaitSettled(build.deployment_id(), 120s);
  INFO(d.failure_reason());
  REQUIRE(d.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(d.image_digest() == build.image_digest());
  CHECK(d.build_id() == build.id());
  std::string body;
  CHECK(WaitFor(5s, [&] { return f.ViaIngress("/health", &body) == 200; }));
  CHECK_THAT(body, Catch::Contains("\"version\": \"7.7.7\""));
  CHECK(f.ViaIngress("/", &body) == 200);
  CHECK_THAT(body, Catch::Contains("Hello from c2d! version 7.7.7"));
  worker.Shutdown();
}

TEST_CASE("a built image answers through the ingress, three instances as three upstreams",
          "[deployer]") {
  DeployerFixture f;
  const std::string digest = f.Image("v1");
  v1::Deployment d = f.Deploy(f.Request(digest, 3));
  CHECK(d.state() == v1::DEPLOYMENT_STATE_PENDING);
  d = f.WaitSettled(d.id());
  INFO(d.failure_reason());
  REQUIRE(d.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(d.has_live_at());

  std::vector<v1::Instance> instances = f.Instances();
  REQUIRE(instances.size() == 3);
  std::set<std::string> addresses;
  for (const v1::Instance& i : instances) {
    CHECK(i.state() == v1::INSTANCE_STATE_HEALTHY);
    CHECK(i.host() == "127.0.0.1");
    CHECK(i.last_health_check().ok());
    addresses.insert(absl::StrCat(i.host(), ":", i.port()));
  }
  CHECK(addresses.size() == 3);
  CheckIngressMatches(f, d.id());
  REQUIRE(WaitFor(5s, [&] { return Body(f) == "v1"; }));
  for (int i = 0; i < 6; ++i) CHECK(Body(f) == "v1");

  auto kinds = Kinds(f.Events(d.id()));
  CHECK(kinds.count("deployment.created") == 1);
  CHECK(kinds.count("deployment.started") == 1);
  CHECK(kinds.count("instance.created") == 3);
  CHECK(kinds.count("instance.healthy") == 3);
  CHECK(kinds.count("deployment.live") == 1);

  // The same request id returns the same deployment and starts nothing.
  v1::DeployRequest again = f.Request(digest, 3);
  again.set_request_id("build-1");
  v1::Deployment first = f.Deploy(again);
  again.set_build_id(f.Build(digest));
  v1::Deployment second = f.Deploy(again);
  CHECK(second.id() == first.id());
}

TEST_CASE("a redeploy under steady traffic fails no request and switches versions", "[deployer]") {
  DeployerFixture f;
  const std::string v1_digest = f.Image("v1"), v2_digest = f.Image("v2");
  v1::Deployment old = f.WaitSettled(f.Deploy(f.Request(v1_digest, 2)).id());
  REQUIRE(old.state() == v1::DEPLOYMENT_STATE_LIVE);
  REQUIRE(WaitFor(5s, [&] { return Body(f) == "v1"; }));
  const std::vector<v1::Instance> old_instances = f.Instances(false, old.id());

  std::atomic<bool> stop{false};
  int failed = 0, sent = 0;
  std::vector<std::string> seen;
  std::thread client([&] {
    // Bounded: at most 20000 requests, loopback only.
    while (!stop && sent < 20000) {
      std::string body;
      long status = f.ViaIngress("/", &body);
      ++sent;
      if (status != 200) {
        ++failed;
        UNSCOPED_INFO("request " << sent << " answered " << status << ": " << body);
      }
      if (seen.empty() || seen.back() != body) seen.push_back(body);
    }
  });
  v1::Deployment next = f.WaitSettled(f.Deploy(f.Request(v2_digest, 2)).id());
  // Until the old instances have drained and stopped.
  bool drained = WaitFor(30s, [&] { return f.Instances(false, old.id()).empty(); });
  std::this_thread::sleep_for(500ms);
  stop = true;
  client.join();
  REQUIRE(next.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(drained);
  INFO("sent " << sent);
  CHECK(sent > 50);
  CHECK(failed == 0);
  // Old answers, then new ones, never back.
  CHECK(seen == std::vector<std::string>{"v1", "v2"});
  CHECK(f.Get(old.id()).state() == v1::DEPLOYMENT_STATE_SUPERSEDED);
  for (const v1::Instance& i : f.Instances(true, old.id())) {
    CHECK(i.state() == v1::INSTANCE_STATE_STOPPED);
  }
  for (const v1::Instance& i : old_instances) {
    CHECK(absl::IsNotFound(f.provider().Inspect(i.provider_ref()).status()));
  }
  CheckIngressMatches(f, next.id());
}

TEST_CASE("a failing new release fails with its reason while the old one serves every request",
          "[deployer]") {
  DeployerFixture f;
  const std::string digest = f.Image("v1");
  v1::Deployment good = f.WaitSettled(f.Deploy(f.Request(digest)).id());
  REQUIRE(good.state() == v1::DEPLOYMENT_STATE_LIVE);
  REQUIRE(WaitFor(5s, [&] { return Body(f) == "v1"; }));

  std::atomic<bool> stop{false};
  int failed = 0, sent = 0;
  std::thread client([&] {
    while (!stop && sent < 20000) {
      if (Body(f) != "v1") ++failed;
      ++sent;
    }
  });

  SECTION("a health check that never passes") {
    v1::DeployRequest bad = f.Request(digest);
    bad.mutable_spec()->mutable_health_check()->set_path("/missing");
    bad.mutable_spec()->mutable_health_check()->set_start_period_s(1);
    v1::Deployment d = f.WaitSettled(f.Deploy(bad).id());
    CHECK(d.state() == v1::DEPLOYMENT_STATE_FAILED);
    CHECK_THAT(d.failure_reason(), Catch::Contains("did not pass its health check (GET /missing"));
    CHECK_THAT(d.failure_reason(), Catch::Contains("HTTP 404"));
    CHECK(HasEvent(f.Events(d.id()), "deployment.failed"));
    CHECK(WaitFor(10s, [&] { return f.Instances(false, d.id()).empty(); }));
  }
  SECTION("an app that exits at start") {
    v1::DeployRequest bad = f.Request(digest);
    bad.mutable_spec()->mutable_run()->set_start_command("echo cannot start >&2; exit 3");
    v1::Deployment d = f.WaitSettled(f.Deploy(bad).id());
    CHECK(d.state() == v1::DEPLOYMENT_STATE_FAILED);
    CHECK_THAT(d.failure_reason(), Catch::Contains("exited with code 3"));
    CHECK_THAT(d.failure_reason(), Catch::Contains("cannot start"));
  }
  stop = true;
  client.join();
  CHECK(sent > 20);
  CHECK(failed == 0);
  CHECK(f.Get(good.id()).state() == v1::DEPLOYMENT_STATE_LIVE);
  CheckIngressMatches(f, good.id());
}

TEST_CASE("the reconciler restarts killed instances, recreates removed ones, flags crash loops",
          "[deployer]") {
  DeployerFixture f;
  const std::string digest = f.Image("v1");
  v1::DeployRequest req = f.Request(digest);
  // First start serves; every restart of the same container crashes.
  req.mutable_spec()->mutable_run()->set_start_command(
      "if [ -f /tmp/started ]; then echo crashing >&2; exit 4; fi; touch /tmp/started; "
      "exec httpd -f -v -p $PORT -h /srv");
  v1::Deployment d = f.WaitSettled(f.Deploy(req).id());
  REQUIRE(d.state() == v1::DEPLOYMENT_STATE_LIVE);
  v1::Instance first = f.Instances().at(0);

  // Removed behind c2d's back: lost, then recreated as a new container.
  REQUIRE(f.provider().Remove(first.provider_ref()).ok());
  v1::Instance recreated;
  REQUIRE(WaitFor(20s, [&] {
    auto list = f.Instances();
    if (list.size() != 1) return false;
    recreated = list[0];
    return recreated.provider_ref() != first.provider_ref() &&
           recreated.state() == v1::INSTANCE_STATE_HEALTHY;
  }));
  CHECK(recreated.id() == first.id());
  CHECK(recreated.restarts() == 1);
  REQUIRE(WaitFor(5s, [&] { return Body(f) == "v1"; }));

  // Killed: the restarted container crashes again and again.
  REQUIRE(f.provider().Stop(recreated.provider_ref(), 0s).ok());
  bool crash_loop = WaitFor(40s, [&] {
    auto list = f.Instances();
    return list.size() == 1 && list[0].state() == v1::INSTANCE_STATE_CRASH_LOOP;
  });
  auto events = ServiceEvents(f);
  CHECK(crash_loop);
  auto kinds = Kinds(events);
  CHECK(kinds.count("instance.lost") == 1);
  CHECK(kinds.count("instance.restarted") >= 6);
  CHECK(kinds.count("instance.crash_loop") == 1);
  // Out of rotation: the service has no healthy instance, so 503.
  CHECK(WaitFor(5s, [&] { return f.ViaIngress("/", nullptr) == 503; }));

  // The crash and the restarts can be read in the runtime log.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::StreamRuntimeLogsRequest logs;
  logs.set_service_id(f.service_id());
  logs.set_tail_lines(1000);
  auto reader = f.stub().StreamRuntimeLogs(&ctx, logs);
  std::string text;
  v1::LogLine line;
  while (reader->Read(&line)) absl::StrAppend(&text, line.text(), "\n");
  REQUIRE(reader->Finish().ok());
  CHECK_THAT(text, Catch::Contains("crashing"));
  CHECK_THAT(text, Catch::Contains("restarted: it exited with code 4"));
}

TEST_CASE("an instance that turns unhealthy leaves rotation, is restarted, and comes back",
          "[deployer]") {
  DeployerFixture f;
  v1::DeployRequest req = f.Request(f.Image("v1"));
  // Serves from a fresh copy at every start, and loses its health file 3 s in.
  req.mutable_spec()->mutable_run()->set_start_command(
      "rm -rf /tmp/www; cp -r /srv /tmp/www; (sleep 3; rm /tmp/www/health) & "
      "exec httpd -f -p $PORT -h /tmp/www");
  v1::Deployment d = f.WaitSettled(f.Deploy(req).id());
  REQUIRE(d.state() == v1::DEPLOYMENT_STATE_LIVE);
  REQUIRE(WaitFor(20s, [&] {
    auto kinds = Kinds(ServiceEvents(f));
    return kinds.count("instance.unhealthy") >= 1 && kinds.count("instance.restarted") >= 1 &&
           kinds.count("instance.healthy") >= 2;
  }));
  bool restarted_for_health = false;
  for (const auto& e : ServiceEvents(f)) {
    if (e.kind() == "instance.restarted" &&
        absl::StrContains(e.message(), "it failed its health check: HTTP 404")) {
      restarted_for_health = true;
    }
  }
  CHECK(restarted_for_health);
  CHECK(f.Instances().at(0).restarts() >= 1);
}

TEST_CASE("a deploy arriving during another supersedes it cleanly", "[deployer]") {
  DeployerFixture f;
  v1::DeployRequest slow = f.Request(f.Image("v1"), 2);
  slow.mutable_spec()->mutable_run()->set_start_command("sleep 30");
  v1::Deployment first = f.Deploy(slow);
  REQUIRE(WaitFor(20s, [&] { return f.Instances(false, first.id()).size() == 2; }));
  v1::Deployment second = f.WaitSettled(f.Deploy(f.Request(f.Image("v2"))).id());
  REQUIRE(second.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(f.Get(first.id()).state() == v1::DEPLOYMENT_STATE_SUPERSEDED);
  CHECK(HasEvent(f.Events(first.id()), "deployment.superseded"));
  CHECK(WaitFor(5s, [&] { return Body(f) == "v2"; }));
  // The superseded release's instances are stopped and gone.
  CHECK(WaitFor(20s, [&] { return f.Instances(false, first.id()).empty(); }));
  for (const v1::Instance& i : f.Instances(true, first.id())) {
    CHECK(absl::IsNotFound(f.provider().Inspect(i.provider_ref()).status()));
  }
  CheckIngressMatches(f, second.id());
}

TEST_CASE("runtime logs and deployment events stream live", "[deployer]") {
  DeployerFixture f;
  v1::Deployment d = f.Deploy(f.Request(f.Image("v1")));
  // Events: a follower of the deployment sees it to live and stays open.
  std::vector<std::string> kinds;
  grpc::ClientContext events_ctx;
  v1::StreamDeploymentEventsRequest er;
  er.set_deployment_id(d.id());
  er.set_follow(true);
  auto events = f.stub().StreamDeploymentEvents(&events_ctx, er);
  v1::DeploymentEvent e;
  while (events->Read(&e)) {
    kinds.push_back(e.kind());
    if (e.kind() == "deployment.live") break;
  }
  events_ctx.TryCancel();
  (void)events->Finish();
  REQUIRE(!kinds.empty());
  CHECK(kinds.front() == "deployment.created");
  CHECK(kinds.back() == "deployment.live");

  // Logs: a follower sees a request's access-log line written after it began.
  REQUIRE(WaitFor(5s, [&] { return Body(f) == "v1"; }));
  grpc::ClientContext logs_ctx;
  logs_ctx.set_deadline(std::chrono::system_clock::now() + 30s);
  v1::StreamRuntimeLogsRequest lr;
  lr.set_service_id(f.service_id());
  lr.set_follow(true);
  lr.set_tail_lines(1);
  auto logs = f.stub().StreamRuntimeLogs(&logs_ctx, lr);
  const std::string marker = absl::StrCat("marker-", absl::AsciiStrToLower(ids::New("m")));
  std::thread poke([&] {
    std::this_thread::sleep_for(500ms);
    f.ViaIngress("/cgi-bin/log?" + marker, nullptr);
  });
  v1::LogLine line;
  bool seen = false;
  while (!seen && logs->Read(&line)) {
    seen = line.text() == "logged: " + marker;
    if (seen) {
      CHECK(line.stream() == v1::LOG_STREAM_STDERR);
      CHECK(line.instance_id() == f.Instances().at(0).id());
    }
  }
  poke.join();
  logs_ctx.TryCancel();
  (void)logs->Finish();
  CHECK(seen);

  // A stream of a deployment that ended stops by itself.
  grpc::ClientContext stop_ctx;
  v1::StopServiceRequest stop;
  stop.set_service_id(f.service_id());
  v1::StopServiceResponse sr;
  REQUIRE(f.stub().StopService(&stop_ctx, stop, &sr).ok());
  grpc::ClientContext final_ctx;
  final_ctx.set_deadline(std::chrono::system_clock::now() + 30s);
  auto until_final = f.stub().StreamDeploymentEvents(&final_ctx, er);
  std::string last;
  while (until_final->Read(&e)) last = e.kind();
  CHECK(until_final->Finish().ok());
  CHECK(last == "deployment.stopped");
}

TEST_CASE("every RPC refuses malformed ids and ranges", "[deployer]") {
  DeployerFixture f;
  auto code = [](grpc::Status s) { return s.error_code(); };
  const auto kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  {
    grpc::ClientContext c;
    v1::GetDeploymentRequest r;
    r.set_id("dep_x'; DROP TABLE deployments;--");
    v1::Deployment out;
    CHECK(code(f.stub().GetDeployment(&c, r, &out)) == kInvalid);
  }
  {
    grpc::ClientContext c;
    v1::GetDeploymentRequest r;
    r.set_id(ids::New("dep"));
    v1::Deployment out;
    CHECK(code(f.stub().GetDeployment(&c, r, &out)) == grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext c;
    v1::ListDeploymentsRequest r;
    r.set_service_id(f.service_id());
    r.mutable_page()->set_page_size(-1);
    v1::ListDeploymentsResponse out;
    CHECK(code(f.stub().ListDeployments(&c, r, &out)) == kInvalid);
  }
  {
    grpc::ClientContext c;
    v1::ListInstancesRequest r;
    r.set_service_id(f.service_id());
    r.mutable_page()->set_page_token("not-a-token");
    v1::ListInstancesResponse out;
    CHECK(code(f.stub().ListInstances(&c, r, &out)) == kInvalid);
  }
  {
    grpc::ClientContext c;
    v1::StopServiceRequest r;
    r.set_service_id("svc");
    v1::StopServiceResponse out;
    CHECK(code(f.stub().StopService(&c, r, &out)) == kInvalid);
  }
  {
    grpc::ClientContext c;
    v1::StreamRuntimeLogsRequest r;
    r.set_service_id(f.service_id());
    r.set_tail_lines(10001);
    auto reader = f.stub().StreamRuntimeLogs(&c, r);
    v1::LogLine l;
    while (reader->Read(&l)) {
    }
    CHECK(code(reader->Finish()) == kInvalid);
  }
  {
    grpc::ClientContext c;
    v1::StreamDeploymentEventsRequest r;  // neither a deployment nor a service
    auto reader = f.stub().StreamDeploymentEvents(&c, r);
    v1::DeploymentEvent e;
    while (reader->Read(&e)) {
    }
    CHECK(code(reader->Finish()) == kInvalid);
  }
  for (const auto& [name, size, path] :
       std::vector<std::tuple<std::string, int, std::string>>{{"Data", 1, "/data"},
                                                              {"data", 0, "/data"},
                                                              {"data", 1, "/"},
                                                              {"data", 1, "/a/../etc"}}) {
    grpc::ClientContext c;
    v1::CreateVolumeRequest r;
    r.set_service_id(f.service_id());
    r.set_project_id(f.project_id());
    r.set_name(name);
    r.set_size_gb(size);
    r.set_mount_path(path);
    v1::Volume out;
    CHECK(code(f.stub().CreateVolume(&c, r, &out)) == kInvalid);
  }
  {
    grpc::ClientContext c;
    v1::CreateVolumeRequest r;
    r.set_service_id(ids::New("svc"));
    r.set_project_id(f.project_id());
    r.set_name("data");
    r.set_size_gb(1);
    r.set_mount_path("/data");
    v1::Volume out;
    CHECK(code(f.stub().CreateVolume(&c, r, &out)) == grpc::StatusCode::NOT_FOUND);
  }
  CHECK(f.db().Count("SELECT count(*) FROM volumes") == 0);
  CHECK(f.db().Count("SELECT count(*) FROM jobs") == 0);
}

TEST_CASE("a rollback brings back the earlier release, image and config, with no build",
          "[deployer]") {
  DeployerFixture f;
  v1::DeployRequest one = f.Request(f.Image("v1"));
  f.AddEnv(one, "GREETING", "hello from one");
  v1::DeployRequest two = f.Request(f.Image("v2"));
  f.AddEnv(two, "GREETING", "hello from two");
  v1::Deployment first = f.WaitSettled(f.Deploy(one).id());
  REQUIRE(first.state() == v1::DEPLOYMENT_STATE_LIVE);
  REQUIRE(WaitFor(5s, [&] { return Body(f, "/cgi-bin/env") == "greeting=hello from one\n"; }));
  v1::Deployment second = f.WaitSettled(f.Deploy(two).id());
  REQUIRE(second.state() == v1::DEPLOYMENT_STATE_LIVE);
  REQUIRE(WaitFor(5s, [&] { return Body(f) == "v2"; }));
  CHECK(Body(f, "/cgi-bin/env") == "greeting=hello from two\n");
  const int64_t builds = f.db().Count("SELECT count(*) FROM builds");

  grpc::ClientContext ctx;
  v1::RollbackRequest rb;
  rb.set_service_id(f.service_id());
  rb.set_to_deployment_id(first.id());
  v1::Deployment back;
  REQUIRE(f.stub().Rollback(&ctx, rb, &back).ok());
  CHECK(back.rollback_of() == first.id());
  CHECK(back.image_digest() == first.image_digest());
  CHECK(back.build_id() == first.build_id());
  back = f.WaitSettled(back.id());
  REQUIRE(back.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(WaitFor(5s, [&] { return Body(f) == "v1"; }));
  CHECK(Body(f, "/cgi-bin/env") == "greeting=hello from one\n");
  CHECK(f.Get(second.id()).state() == v1::DEPLOYMENT_STATE_ROLLED_BACK);
  CHECK(f.db().Count("SELECT count(*) FROM builds") == builds);

  // Rolling back to the live one, or to one that never went live, is refused.
  for (const std::string& target : {back.id(), ids::New("dep")}) {
    grpc::ClientContext c;
    rb.set_to_deployment_id(target);
    v1::Deployment out;
    grpc::Status s = f.stub().Rollback(&c, rb, &out);
    CHECK((s.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
           s.error_code() == grpc::StatusCode::NOT_FOUND));
  }
}

TEST_CASE("a deployer killed with SIGKILL mid-deploy finishes cleanly after a restart",
          "[deployer]") {
  DeployerFixture f({.in_process = false});
  const std::string v1_digest = f.Image("v1"), v2_digest = f.Image("v2");
  const std::string log =
      absl::StrCat(testing::RequireEnv("C2D_TEST_TMP"), "/", ids::New("dp"), ".log");
  auto deployer = std::make_unique<testing::Subprocess>(std::vector<std::string>{C2D_BIN_DEPLOYER},
                                                        f.ProcessEnv(), log);
  v1::Deployment old = f.WaitSettled(f.Deploy(f.Request(v1_digest, 2)).id());
  INFO(deployer->Output());
  REQUIRE(old.state() == v1::DEPLOYMENT_STATE_LIVE);
  REQUIRE(WaitFor(5s, [&] { return Body(f) == "v1"; }));

  // The new release takes a few seconds to boot: kill the deployer while it waits.
  v1::DeployRequest slow = f.Request(v2_digest, 2);
  slow.mutable_spec()->mutable_run()->set_start_command("sleep 3; exec httpd -f -p $PORT -h /srv");
  v1::Deployment next = f.Deploy(slow);
  REQUIRE(WaitFor(20s, [&] { return f.Instances(false, next.id()).size() == 2; }));
  deployer->Signal(SIGKILL);
  REQUIRE(deployer->Wait(10s).has_value());
  // Meanwhile the old release serves, untouched.
  CHECK(f.Get(old.id()).state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(Body(f) == "v1");

  deployer = std::make_unique<testing::Subprocess>(std::vector<std::string>{C2D_BIN_DEPLOYER},
                                                   f.ProcessEnv(), log);
  next = f.WaitSettled(next.id(), 60s);
  REQUIRE(next.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(WaitFor(5s, [&] { return Body(f) == "v2"; }));
  CHECK(f.db().Count(absl::StrCat("SELECT count(*) FROM deployments WHERE service_id = '",
                                  f.service_id(), "' AND state = 'live'")) == 1);
  // The old instances drain and stop; no container is left unaccounted for.
  CHECK(WaitFor(20s, [&] { return f.Instances(false, old.id()).empty(); }));
  auto containers = f.provider().List({{"c2d.service", f.service_id()}});
  REQUIRE(containers.ok());
  std::set<std::string> refs;
  for (const auto& c : *containers) refs.insert(c.ref);
  std::set<std::string> live_refs;
  for (const v1::Instance& i : f.Instances()) live_refs.insert(i.provider_ref());
  CHECK(WaitFor(10s, [&] {
    auto now = f.provider().List({{"c2d.service", f.service_id()}});
    std::set<std::string> r;
    for (const auto& c : *now) r.insert(c.ref);
    return r == live_refs;
  }));
  CheckIngressMatches(f, next.id());
  deployer->Signal(SIGTERM);
  CHECK(deployer->Wait(20s) == 0);
}

TEST_CASE("a deployment whose engine stays down fails after its last attempt, saying why",
          "[deployer]") {
  DeployerFixture f({.engine_socket = testing::RequireEnv("C2D_TEST_TMP") + "/no-engine.sock"});
  v1::Deployment d = f.WaitSettled(f.Deploy(f.Request(f.Image("v1"))).id(), 60s);
  CHECK(d.state() == v1::DEPLOYMENT_STATE_FAILED);
  CHECK_THAT(d.failure_reason(), Catch::Contains("gave up after 5 attempts"));
  CHECK_THAT(d.failure_reason(), Catch::Contains("no-engine.sock"));
  CHECK(f.db().Count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 1);
}

TEST_CASE("bad deploy input gets a clear error and changes nothing", "[deployer]") {
  DeployerFixture f;
  const std::string digest = f.Image("v1");
  auto expect = [&](const v1::DeployRequest& r, grpc::StatusCode code, const std::string& text) {
    v1::Deployment out;
    grpc::Status s = f.TryDeploy(r, &out);
    INFO(s.error_message());
    CHECK(s.error_code() == code);
    CHECK_THAT(s.error_message(), Catch::Contains(text));
  };
  v1::DeployRequest r = f.Request(digest);
  SECTION("unknown service") {
    const std::string other = ids::New("svc");
    r.set_service_id(other);
    r.mutable_spec()->set_service_id(other);
    expect(r, grpc::StatusCode::NOT_FOUND, "does not exist");
  }
  SECTION("digest not in the registry") {
    r.set_image_digest("sha256:" + std::string(64, 'a'));
    expect(r, grpc::StatusCode::FAILED_PRECONDITION, "is not in the registry");
  }
  SECTION("malformed digest and foreign registry") {
    r.set_image_digest("latest");
    expect(r, grpc::StatusCode::INVALID_ARGUMENT, "image_digest");
    r = f.Request(digest);
    r.set_image_repository("docker.io/library/nginx");
    expect(r, grpc::StatusCode::INVALID_ARGUMENT, "image_repository");
  }
  SECTION("instance_count 0 and 21") {
    r.mutable_spec()->mutable_run()->set_instance_count(0);
    expect(r, grpc::StatusCode::INVALID_ARGUMENT, "spec.run.instance_count: must be 1-20");
    r.mutable_spec()->mutable_run()->set_instance_count(21);
    expect(r, grpc::StatusCode::INVALID_ARGUMENT, "spec.run.instance_count: must be 1-20");
  }
  SECTION("a volume with two instances") {
    v1::VolumeMount* m = r.mutable_spec()->add_volumes();
    m->set_volume_id(ids::New("vol"));
    m->set_name("data");
    m->set_mount_path("/data");
    m->set_size_gb(1);
    r.mutable_spec()->mutable_run()->set_instance_count(2);
    expect(r, grpc::StatusCode::INVALID_ARGUMENT,
           "a service with a volume runs exactly one instance");
  }
  SECTION("health check and env out of range") {
    r.mutable_spec()->mutable_health_check()->set_timeout_s(5);
    expect(r, grpc::StatusCode::INVALID_ARGUMENT, "spec.health_check.timeout_s");
    r = f.Request(digest);
    f.AddEnv(r, "PORT", "1");
    expect(r, grpc::StatusCode::INVALID_ARGUMENT, "PORT is set by c2d");
    r = f.Request(digest);
    r.mutable_spec()->set_service_id(ids::New("svc"));
    expect(r, grpc::StatusCode::INVALID_ARGUMENT, "spec.service_id");
  }
  CHECK(f.db().Count("SELECT count(*) FROM deployments") == 0);
  CHECK(f.db().Count("SELECT count(*) FROM jobs") == 0);
  CHECK(f.db().Count("SELECT count(*) FROM instances") == 0);
}

TEST_CASE("a volume is mounted, outlives deploys, and is deleted only when unused", "[deployer]") {
  DeployerFixture f;
  grpc::ClientContext ctx;
  v1::CreateVolumeRequest cv;
  cv.set_service_id(f.service_id());
  cv.set_project_id(f.project_id());
  cv.set_name("data");
  cv.set_size_gb(1);
  cv.set_mount_path("/data");
  v1::Volume volume;
  REQUIRE(f.stub().CreateVolume(&ctx, cv, &volume).ok());
  CHECK(volume.state() == v1::VOLUME_STATE_PENDING);
  {
    grpc::ClientContext again;
    v1::Volume dup;
    CHECK(f.stub().CreateVolume(&again, cv, &dup).error_code() == grpc::StatusCode::ALREADY_EXISTS);
  }

  v1::DeployRequest r = f.Request(f.Image("v1"));
  v1::VolumeMount* m = r.mutable_spec()->add_volumes();
  m->set_volume_id(volume.id());
  m->set_name("data");
  m->set_mount_path("/data");
  m->set_size_gb(1);
  r.mutable_spec()->mutable_run()->set_start_command(
      "echo $((`cat /data/boots 2>/dev/null || echo 0` + 1)) > /data/boots; "
      "exec httpd -f -p $PORT -h /srv");
  v1::Deployment first = f.WaitSettled(f.Deploy(r).id());
  REQUIRE(first.state() == v1::DEPLOYMENT_STATE_LIVE);
  r.set_build_id(f.Build(r.image_digest()));
  v1::Deployment second = f.WaitSettled(f.Deploy(r).id());
  REQUIRE(second.state() == v1::DEPLOYMENT_STATE_LIVE);
  // Both releases wrote to the same directory on the host.
  std::string boots;
  std::ifstream(fs::path(f.config().local.volumes_dir) /
                absl::AsciiStrToLower(absl::StrCat("vol-", volume.id().substr(4))) / "boots") >>
      boots;
  CHECK(boots == "2");

  auto del = [&](v1::Volume* out) {
    grpc::ClientContext c;
    v1::DeleteVolumeRequest dr;
    dr.set_id(volume.id());
    return f.stub().DeleteVolume(&c, dr, out);
  };
  const fs::path dir = fs::path(f.config().local.volumes_dir) /
                       absl::AsciiStrToLower(absl::StrCat("vol-", volume.id().substr(4)));
  auto state = [&] {
    grpc::ClientContext c;
    v1::GetVolumeRequest g;
    g.set_id(volume.id());
    v1::Volume v;
    REQUIRE(f.stub().GetVolume(&c, g, &v).ok());
    return v.state();
  };
  // Deleted while the live release mounts it: the data stays while that
  // release runs.
  v1::Volume out;
  REQUIRE(del(&out).ok());
  CHECK(out.state() == v1::VOLUME_STATE_DELETING);
  CHECK(fs::exists(dir / "boots"));
  // The next release, without it, goes live: then the data goes.
  v1::DeployRequest without = f.Request(f.Image("v1"));
  v1::Deployment third = f.WaitSettled(f.Deploy(without).id());
  REQUIRE(third.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(WaitFor(30s, [&] { return state() == v1::VOLUME_STATE_DELETED; }));
  CHECK(!fs::exists(dir));
  REQUIRE(del(&out).ok());  // deleting again is a no-op
  CHECK(out.state() == v1::VOLUME_STATE_DELETED);

  // Stopping the service: the release ends, the host is unknown again.
  grpc::ClientContext sc;
  v1::StopServiceRequest stop;
  stop.set_service_id(f.service_id());
  stop.set_reason("test is over");
  v1::StopServiceResponse sr;
  REQUIRE(f.stub().StopService(&sc, stop, &sr).ok());
  CHECK(WaitFor(20s, [&] { return f.Get(third.id()).state() == v1::DEPLOYMENT_STATE_STOPPED; }));
  CHECK(WaitFor(20s, [&] { return f.Instances().empty(); }));
  CHECK(WaitFor(5s, [&] { return f.ViaIngress("/", nullptr) == 404; }));
  // A volume nothing mounts is destroyed at once.
  cv.set_name("scratch");
  cv.set_mount_path("/scratch");
  grpc::ClientContext again;
  v1::Volume scratch;
  REQUIRE(f.stub().CreateVolume(&again, cv, &scratch).ok());
  grpc::ClientContext dc;
  v1::DeleteVolumeRequest dr;
  dr.set_id(scratch.id());
  grpc::Status deleted = f.stub().DeleteVolume(&dc, dr, &out);
  INFO(deleted.error_message());
  REQUIRE(deleted.ok());
  CHECK(out.state() == v1::VOLUME_STATE_DELETED);
}

}  // namespace
}  // namespace c2d
