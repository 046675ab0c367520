// The deployer's RPCs: live log and event streams, and bad input refused
// with nothing changed.

#include <catch2/catch.hpp>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/status.h"
#include "services/deployer/store.h"
#include "tests/integration/deployer/deployer_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using testing::Body;
using testing::DeployerFixture;
using testing::WaitFor;

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

TEST_CASE("runtime log tails: where each instance resumes, and the trim, for many at once",
          "[deployer]") {
  DeployerFixture f({.in_process = false});  // nothing runs the deployment
  const std::string digest = absl::StrCat("sha256:", std::string(64, 'c'));
  v1::DeployRequest request = f.Request(digest, 4);
  deployer::NewDeployment nd{.id = ids::New("dep"),
                             .build_id = request.build_id(),
                             .request_id = "",
                             .image_repository = request.image_repository(),
                             .image_digest = digest,
                             .spec = request.spec(),
                             .rollback_of = ""};
  const std::vector<std::string> ins = {ids::New("ins"), ids::New("ins"), ids::New("ins"),
                                        ids::New("ins")};
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  auto lines = [&](int n, int from = 0) {
    std::vector<deployer::RuntimeLine> out;
    for (int i = from; i < from + n; ++i) {
      out.push_back({"stdout", absl::StrCat("line ", i), t0 + absl::Seconds(i)});
    }
    return out;
  };
  REQUIRE(
      f.pool()
          .Transact("seed",
                    [&](pg::Tx& tx) -> absl::Status {
                      auto d = deployer::InsertDeployment(tx, nd);
                      if (!d.ok()) return d.status();
                      for (const std::string& id : ins) {
                        C2D_RETURN_IF_ERROR(deployer::InsertInstance(tx, id, d->deployment));
                      }
                      const std::string& svc = f.service_id();
                      C2D_RETURN_IF_ERROR(deployer::AppendRuntimeLogs(tx, svc, ins[0], lines(30)));
                      C2D_RETURN_IF_ERROR(deployer::AppendRuntimeLogs(tx, svc, ins[1], lines(3)));
                      // c2d's own lines are not where the engine resumes.
                      C2D_RETURN_IF_ERROR(deployer::AppendRuntimeLogs(
                          tx, svc, ins[1], {{"system", "restarted", t0 + absl::Hours(1)}}));
                      return deployer::AppendRuntimeLogs(tx, svc, ins[3], lines(30));
                    })
          .ok());

  auto last = f.pool().Read("last", [&](pg::Tx& tx) {
    return deployer::LastRuntimeLogTimes(tx, {ins[0], ins[1], ins[2]});
  });
  REQUIRE(last.ok());
  CHECK(last->size() == 2);  // ins[2] has no line; ins[3] was not asked for
  CHECK(last->at(ins[0]) == t0 + absl::Seconds(29));
  CHECK(last->at(ins[1]) == t0 + absl::Seconds(2));

  REQUIRE(f.pool()
              .Transact("trim",
                        [&](pg::Tx& tx) {
                          return deployer::TrimRuntimeLogs(tx, {ins[0], ins[1], ins[2]}, 10);
                        })
              .ok());
  auto count = [&](const std::string& id, const char* what = "count(*)") {
    return f.db().Scalar(
        absl::StrCat("SELECT ", what, " FROM runtime_log_tail WHERE instance_id = '", id, "'"));
  };
  CHECK(count(ins[0]) == "10");  // the newest ten
  CHECK(count(ins[0], "min(text)") == "line 20");
  CHECK(count(ins[1]) == "4");   // fewer than ten: all kept
  CHECK(count(ins[3]) == "30");  // not asked for: untouched
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

}  // namespace
}  // namespace c2d
