// The deployer against the real engine, registry, PowerDNS and Caddy: a
// built image answers at its hostname, redeploys and rollbacks switch with
// zero failed requests, failed health checks leave the old release serving,
// supersession, and volumes. Healing: heal_pgtest.cc; the RPCs' streams and
// refusals: rpc_pgtest.cc.

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/common/ids.h"
#include "libs/http/client.h"
#include "services/builder/build_job.h"
#include "services/builder/builder_service.h"
#include "tests/integration/builder/builder_fixture.h"
#include "tests/integration/deployer/deployer_fixture.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::Body;
using testing::CheckIngressMatches;
using testing::DeployerFixture;
using testing::HasEvent;
using testing::Kinds;
using testing::RequireEnv;
using testing::WaitFor;

TEST_CASE("the bundled sample, built from git, deploys itself and answers at its hostname",
          "[deployer]") {
  DeployerFixture f;
  auto sample = testing::SampleRepo("7.7.7");
  const testing::GitRepo& repo = *sample;
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
  // Discovery: <service>.<project>.internal.<base> lists the three
  // instances' addresses on the project's network.
  std::set<std::string> privates = InternalAddresses(f);
  CHECK(privates.size() == 3);
  for (const std::string& a : privates) CHECK_FALSE(absl::StartsWith(a, "127."));

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

  // Stopped, the service has no internal name any more.
  grpc::ClientContext sc;
  v1::StopServiceRequest stop;
  stop.set_service_id(f.service_id());
  v1::StopServiceResponse sr;
  REQUIRE(f.stub().StopService(&sc, stop, &sr).ok());
  CHECK(WaitFor(20s, [&] { return InternalAddresses(f).empty(); }));
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

TEST_CASE("overlapping releases under saturating traffic fail no request", "[deployer]") {
  DeployerFixture f;
  const std::string v1_digest = f.Image("v1"), v2_digest = f.Image("v2"), v3_digest = f.Image("v3");
  v1::Deployment first = f.WaitSettled(f.Deploy(f.Request(v1_digest, 2)).id());
  REQUIRE(first.state() == v1::DEPLOYMENT_STATE_LIVE);
  REQUIRE(WaitFor(5s, [&] { return Body(f) == "v1"; }));

  // 16 clients back to back, each request on a new connection: more than
  // the instances accept at once, so connection attempts queue and some
  // are dropped by the kernel while releases start and drain.
  // (Catch2's macros are for this thread only: clients collect failures.)
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::mutex mu;
  std::vector<std::string> failures;
  const std::string url = absl::StrCat("http://", RequireEnv("C2D_TEST_CADDY_HTTP"), "/");
  std::vector<std::thread> clients;
  for (int c = 0; c < 16; ++c) {
    clients.emplace_back([&] {
      while (!stop && sent < 200000) {
        auto r = http::Send({.url = url, .headers = {{"Host", f.hostname()}}, .timeout = 10s});
        ++sent;
        if (!r.ok() || r->status != 200) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(r.ok() ? absl::StrCat(r->status, ": ", r->body)
                                    : r.status().ToString());
        }
      }
    });
  }
  std::this_thread::sleep_for(1s);
  // An env change, a redeploy and a rollback in quick succession.
  v1::Deployment second = f.Deploy(f.Request(v2_digest, 2));
  std::this_thread::sleep_for(1500ms);
  v1::Deployment third = f.WaitSettled(f.Deploy(f.Request(v3_digest, 2)).id());
  v1::Deployment back = RollBackTo(f, first.id());
  back = f.WaitSettled(back.id());
  // Until every earlier release has drained and stopped.
  const bool drained = WaitFor(30s, [&] {
    return f.Instances(false, first.id()).empty() && f.Instances(false, second.id()).empty() &&
           f.Instances(false, third.id()).empty();
  });
  std::this_thread::sleep_for(500ms);
  stop = true;
  for (std::thread& t : clients) t.join();
  REQUIRE(third.state() == v1::DEPLOYMENT_STATE_LIVE);
  REQUIRE(back.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(drained);
  INFO("sent " << sent << "; first failures: "
               << absl::StrJoin(failures.begin(),
                                failures.begin() + std::min<size_t>(failures.size(), 5), " | "));
  CHECK(sent > 500);
  CHECK(failures.empty());
  CHECK(Body(f) == "v1");
  CheckIngressMatches(f, back.id());
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
  std::string body;
  const bool serves_v2 = WaitFor(10s, [&] { return (body = Body(f)) == "v2"; });
  if (!serves_v2) {
    for (const v1::Instance& i : f.Instances(true, second.id())) {
      UNSCOPED_INFO("new release's instance " << i.id() << " "
                                              << v1::InstanceState_Name(i.state()));
    }
  }
  INFO("last answer: " << body);
  CHECK(serves_v2);
  // The superseded release's instances are stopped and gone.
  CHECK(WaitFor(20s, [&] { return f.Instances(false, first.id()).empty(); }));
  // A container the superseded job made while being stopped is an orphan
  // the reconciler removes on its next pass.
  CHECK(WaitFor(30s, [&] {
    // (An instance superseded before its container was made has no ref.)
    for (const v1::Instance& i : f.Instances(true, first.id())) {
      if (!i.provider_ref().empty() &&
          !absl::IsNotFound(f.provider().Inspect(i.provider_ref()).status())) {
        return false;
      }
    }
    auto left = f.provider().List({{"c2d.deployment", first.id()}});
    return left.ok() && left->empty();
  }));
  for (const v1::Instance& i : f.Instances(true, first.id())) {
    UNSCOPED_INFO("instance " << i.id() << " " << v1::InstanceState_Name(i.state()) << " ref "
                              << i.provider_ref());
  }
  CheckIngressMatches(f, second.id());
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

  v1::Deployment back = RollBackTo(f, first.id());
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
    v1::RollbackRequest rb;
    rb.set_service_id(f.service_id());
    rb.set_to_deployment_id(target);
    v1::Deployment out;
    grpc::Status s = f.stub().Rollback(&c, rb, &out);
    CHECK((s.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
           s.error_code() == grpc::StatusCode::NOT_FOUND));
  }
}

TEST_CASE("a volume is mounted, outlives deploys, and is deleted only when unused", "[deployer]") {
  DeployerFixture f;
  v1::CreateVolumeRequest cv = testing::VolumeRequest(f);
  const v1::Volume volume = testing::CreateVolume(f);
  CHECK(volume.state() == v1::VOLUME_STATE_PENDING);
  {
    grpc::ClientContext again;
    v1::Volume dup;
    CHECK(f.stub().CreateVolume(&again, cv, &dup).error_code() == grpc::StatusCode::ALREADY_EXISTS);
  }

  v1::DeployRequest r = testing::WithVolume(f.Request(f.Image("v1")), volume);
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

// The deployment that rolls back to `to` (a restore made by the deployer),
// once there is one.
v1::Deployment RestoreOf(DeployerFixture& f, const std::string& to) {
  v1::Deployment found;
  REQUIRE(WaitFor(20s, [&] {
    grpc::ClientContext c;
    v1::ListDeploymentsRequest l;
    l.set_service_id(f.service_id());
    v1::ListDeploymentsResponse out;
    if (!f.stub().ListDeployments(&c, l, &out).ok()) return false;
    for (const v1::Deployment& d : out.deployments()) {
      if (d.rollback_of() == to) found = d;
    }
    return !found.id().empty();
  }));
  return found;
}

TEST_CASE(
    "where a volume attaches to one instance at a time the old release stops first and comes "
    "back when the new one fails",
    "[deployer]") {
  DeployerFixture f({.volumes_attach_once = true});
  const v1::Volume volume = testing::CreateVolume(f);
  auto with_volume = [&](const std::string& version) {
    v1::DeployRequest r = testing::WithVolume(f.Request(f.Image(version)), volume);
    r.mutable_spec()->mutable_run()->set_start_command(
        "echo $((`cat /data/boots 2>/dev/null || echo 0` + 1)) > /data/boots; "
        "exec httpd -f -p $PORT -h /srv");
    return r;
  };
  auto boots = [&] {
    std::string n;
    std::ifstream(fs::path(f.config().local.volumes_dir) /
                  absl::AsciiStrToLower(absl::StrCat("vol-", volume.id().substr(4))) / "boots") >>
        n;
    return n;
  };

  v1::Deployment first = f.WaitSettled(f.Deploy(with_volume("v1")).id());
  REQUIRE(first.state() == v1::DEPLOYMENT_STATE_LIVE);
  REQUIRE(WaitFor(5s, [&] { return Body(f) == "v1"; }));
  {
    // The provider does refuse a second instance on a held volume.
    cloud::InstanceSpec spec{
        .name = absl::AsciiStrToLower(ids::New("probe")),
        .image = absl::StrCat(f.repository(), "@", first.image_digest()),
        .volumes = {{absl::AsciiStrToLower(absl::StrCat("vol-", volume.id().substr(4))), "/data"}}};
    CHECK(absl::IsFailedPrecondition(f.attach_once()->Create(spec).status()));
    REQUIRE(f.attach_once()->refused() == 1);
  }

  v1::Deployment second = f.WaitSettled(f.Deploy(with_volume("v2")).id());
  INFO(second.failure_reason());
  REQUIRE(second.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(f.attach_once()->refused() == 1);  // the new instance came after the old one was gone
  CHECK(HasEvent(f.Events(second.id()), "deployment.stopping_previous"));
  CHECK(f.Get(first.id()).state() == v1::DEPLOYMENT_STATE_SUPERSEDED);
  CHECK(WaitFor(5s, [&] { return Body(f) == "v2"; }));
  CHECK(boots() == "2");

  // A release that cannot start: the one it stopped comes back by itself.
  v1::DeployRequest bad = with_volume("v3");
  bad.mutable_spec()->mutable_run()->set_start_command("echo cannot start >&2; exit 3");
  v1::Deployment third = f.WaitSettled(f.Deploy(bad).id());
  CHECK(third.state() == v1::DEPLOYMENT_STATE_FAILED);
  CHECK(HasEvent(f.Events(third.id()), "deployment.restoring"));
  v1::Deployment restore = f.WaitSettled(RestoreOf(f, second.id()).id());
  INFO(restore.failure_reason());
  REQUIRE(restore.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(restore.image_digest() == second.image_digest());
  CHECK(WaitFor(5s, [&] { return Body(f) == "v2"; }));
  CHECK(boots() == "3");
  CHECK(f.Instances().size() == 1);

  // A release superseded while it starts, after it stopped the live one:
  // the release that superseded it restores that one, should it fail too.
  v1::DeployRequest slow = with_volume("v4");
  slow.mutable_spec()->mutable_health_check()->set_start_period_s(120);
  v1::Deployment fourth = f.Deploy(slow);
  REQUIRE(WaitFor(30s,
                  [&] { return HasEvent(f.Events(fourth.id()), "deployment.stopping_previous"); }));
  v1::Deployment fifth = f.WaitSettled(f.Deploy(bad).id());
  CHECK(fifth.state() == v1::DEPLOYMENT_STATE_FAILED);
  CHECK(f.Get(fourth.id()).state() == v1::DEPLOYMENT_STATE_SUPERSEDED);
  v1::Deployment again = f.WaitSettled(RestoreOf(f, restore.id()).id());
  INFO(again.failure_reason());
  REQUIRE(again.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(WaitFor(5s, [&] { return Body(f) == "v2"; }));
  CHECK(f.attach_once()->refused() == 1);
  CHECK(f.Instances().size() == 1);
}

}  // namespace
}  // namespace c2d
