// The deployer heals what breaks: killed, removed, crash-looping and
// unhealthy instances, a deployer killed mid-deploy, an engine that stays
// down.

#include <signal.h>

#include <catch2/catch.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/metrics/metrics.h"
#include "tests/integration/deployer/deployer_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using testing::Body;
using testing::CheckIngressMatches;
using testing::DeployerFixture;
using testing::Kinds;
using testing::ServiceEvents;
using testing::WaitFor;

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
  absl::Status killed = f.provider().Stop(recreated.provider_ref(), 0s);
  INFO(killed.ToString());
  REQUIRE(killed.ok());
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

TEST_CASE("the instance gauges go with the reconciler's leadership and come back with it",
          "[deployer]") {
  DeployerFixture f;
  REQUIRE(f.WaitSettled(f.Deploy(f.Request(f.Image("v1"))).id()).state() ==
          v1::DEPLOYMENT_STATE_LIVE);
  // c2d_instances{service=the fixture's, state}, by state.
  auto gauges = [&] {
    std::map<std::string, double> out;
    for (const auto& family : metrics::Registry().Collect()) {
      if (family.name != "c2d_instances") continue;
      for (const auto& m : family.metric) {
        std::map<std::string, std::string> labels;
        for (const auto& l : m.label) labels[l.name] = l.value;
        if (labels["service"] == f.service_id()) out[labels["state"]] = m.gauge.value;
      }
    }
    return out;
  };
  REQUIRE(WaitFor(10s, [&] { return gauges()["healthy"] == 1; }));
  CHECK(gauges().size() == 6);  // every state, 0 but healthy
  // The leader's session dies: it stops leading for the follower retry
  // (2 s) before it takes the duty again, and reports no instances meanwhile.
  REQUIRE(testing::TerminateLockHolders(f.db(), jobs::Leader::LockKey("deployer.reconcile")) == 1);
  CHECK(WaitFor(5s, [&] { return gauges().empty(); }));
  CHECK(WaitFor(10s, [&] { return gauges()["healthy"] == 1; }));
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
  // The handler records the failed deployment; the queue marks its job
  // failed just after the handler returns.
  CHECK(WaitFor(
      10s, [&] { return f.db().Count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 1; }));
  CHECK(f.db().Count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 1);
}

}  // namespace
}  // namespace c2d
