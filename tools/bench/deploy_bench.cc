// c2d-bench-deploy: how long a release takes from Deploy to serving through
// the ingress, split into the app's own start (its first passing health
// check minus its container's start) and c2d's overhead (the rest); and the
// same for a rollback. Run through tools/bench/deploy, which starts the
// platform, a c2d-builder and a c2d-deployer.
//
// Two builds of the sample app (VERSION a and b) are made once. Each round
// deploys b over a live a, then rolls back to a; "serving" is the first
// ingress answer of /health that names the new version (polled every 5 ms).

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/command.h"
#include "libs/engine/engine.h"
#include "libs/http/client.h"
#include "proto/c2d/v1/builder.grpc.pb.h"
#include "proto/c2d/v1/deployer.grpc.pb.h"
#include "tools/bench/stats.h"

namespace {

namespace fs = std::filesystem;
using namespace c2d;
using google::protobuf::util::TimeUtil;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    std::fprintf(stderr, "c2d-bench-deploy: %s is not set (run tools/bench/deploy)\n", name);
    std::exit(2);
  }
  return v;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "c2d-bench-deploy: %s\n", what.c_str());
  std::exit(1);
}

void Git(const std::vector<std::string>& args, const fs::path& cwd) {
  std::vector<std::string> argv = {"git"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunCommand({.argv = argv,
                       .env = {{"GIT_AUTHOR_NAME", "bench"},
                               {"GIT_AUTHOR_EMAIL", "bench@c2d"},
                               {"GIT_COMMITTER_NAME", "bench"},
                               {"GIT_COMMITTER_EMAIL", "bench@c2d"}},
                       .cwd = cwd.string()});
  if (!r.ok() || r->exit_code != 0) Die("git " + args[0] + " failed");
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(t));
}

using bench::Stats;
using bench::Summarize;

class Bench {
 public:
  Bench()
      : builder_(v1::BuilderService::NewStub(
            grpc::CreateChannel(Env("C2D_BUILDER_ADDR"), grpc::InsecureChannelCredentials()))),
        deployer_(v1::DeployerService::NewStub(
            grpc::CreateChannel(Env("C2D_DEPLOYER_ADDR"), grpc::InsecureChannelCredentials()))),
        engine_(Env("C2D_TEST_ENGINE_SOCKET")),
        ingress_(Env("C2D_TEST_CADDY_HTTP")),
        host_(Env("C2D_BENCH_HOST")) {
    spec_.set_service_id(Env("C2D_BENCH_SERVICE_ID"));
    spec_.set_project_id(Env("C2D_BENCH_PROJECT_ID"));
    spec_.set_project_name("bench");
    spec_.set_service_name("hello");
    spec_.set_type(v1::SERVICE_TYPE_WEB);
    spec_.mutable_run()->set_port(8080);
    spec_.mutable_run()->set_instance_count(1);
    // DESIGN point 11's defaults, as the gateway stores them.
    v1::HealthCheck* hc = spec_.mutable_health_check();
    hc->set_path("/health");
    hc->set_interval_s(10);
    hc->set_timeout_s(2);
    hc->set_healthy_threshold(1);
    hc->set_unhealthy_threshold(3);
    hc->set_start_period_s(30);
  }

  // Builds the sample at `version` (build only); returns the build.
  v1::Build BuildSample(const fs::path& repo, const std::string& version) {
    std::ofstream(repo / "VERSION") << version << "\n";
    Git({"commit", "-q", "-am", version}, repo);
    v1::StartBuildRequest request;
    request.set_service_id(spec_.service_id());
    request.mutable_source()->set_repo_url(repo.string());
    request.mutable_source()->set_branch("main");
    request.set_skip_deploy(true);
    *request.mutable_spec() = spec_;
    grpc::ClientContext ctx;
    v1::StartBuildResponse started;
    if (!builder_->StartBuild(&ctx, request, &started).ok()) Die("StartBuild failed");
    v1::Build build;
    const absl::Time deadline = absl::Now() + absl::Minutes(5);
    while (absl::Now() < deadline) {
      grpc::ClientContext c;
      v1::GetBuildRequest get;
      get.set_id(started.build().id());
      if (builder_->GetBuild(&c, get, &build).ok() &&
          (build.state() == v1::BUILD_STATE_SUCCEEDED || build.state() == v1::BUILD_STATE_FAILED)) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    if (build.state() != v1::BUILD_STATE_SUCCEEDED) Die("build failed: " + build.failure_reason());
    return build;
  }

  struct Timing {
    double total = 0;      // Deploy/Rollback call to first answer of the new version
    double app_start = 0;  // first passing health check minus container start
    // c2d's part, step by step (from the deployment's events):
    double rpc = 0;       // the Deploy/Rollback call itself
    double pickup = 0;    // the call to the deploy job's start
    double create = 0;    // job start to the container created and started
    double switched = 0;  // first passing check to live (the switch)
    double ingress = 0;   // live to the ingress serving the new version
    std::string deployment_id;
  };

  Timing Deploy(const v1::Build& build, const std::string& version) {
    v1::DeployRequest request;
    request.set_service_id(spec_.service_id());
    request.set_build_id(build.id());
    request.set_image_repository(build.image_repository());
    request.set_image_digest(build.image_digest());
    *request.mutable_spec() = spec_;
    const absl::Time t0 = absl::Now();
    grpc::ClientContext ctx;
    v1::Deployment d;
    grpc::Status s = deployer_->Deploy(&ctx, request, &d);
    if (!s.ok()) Die("Deploy: " + s.error_message());
    const absl::Time returned = absl::Now();
    Timing t = Measure(t0, d.id(), version);
    t.rpc = absl::ToDoubleSeconds(returned - t0);
    return t;
  }

  Timing Rollback(const std::string& to, const std::string& version) {
    v1::RollbackRequest request;
    request.set_service_id(spec_.service_id());
    request.set_to_deployment_id(to);
    const absl::Time t0 = absl::Now();
    grpc::ClientContext ctx;
    v1::Deployment d;
    grpc::Status s = deployer_->Rollback(&ctx, request, &d);
    if (!s.ok()) Die("Rollback: " + s.error_message());
    const absl::Time returned = absl::Now();
    Timing t = Measure(t0, d.id(), version);
    t.rpc = absl::ToDoubleSeconds(returned - t0);
    return t;
  }

 private:
  Timing Measure(absl::Time t0, const std::string& deployment_id, const std::string& version) {
    const std::string want = absl::StrCat("\"version\": \"", version, "\"");
    const absl::Time deadline = t0 + absl::Minutes(2);
    absl::Time serving;
    while (true) {
      auto r = http::Send({.url = absl::StrCat("http://", ingress_, "/health"),
                           .headers = {{"Host", host_}},
                           .timeout = std::chrono::seconds(2)});
      serving = absl::Now();
      if (r.ok() && r->status == 200 && r->body.find(want) != std::string::npos) break;
      if (serving > deadline) Die("deployment " + deployment_id + " never served " + version);
      absl::SleepFor(absl::Milliseconds(5));
    }
    Timing t;
    t.total = absl::ToDoubleSeconds(serving - t0);
    t.deployment_id = deployment_id;
    // The app's own start: its container's start to its first passing check.
    grpc::ClientContext ctx;
    v1::StreamDeploymentEventsRequest req;
    req.set_deployment_id(deployment_id);
    auto reader = deployer_->StreamDeploymentEvents(&ctx, req);
    v1::DeploymentEvent e;
    std::optional<absl::Time> healthy;
    std::map<std::string, absl::Time> at;
    std::string instance;
    while (reader->Read(&e)) {
      at.emplace(e.kind(), ToTime(e.time()));
      if (e.kind() == "instance.healthy" && !healthy) {
        healthy = ToTime(e.time());
        instance = e.instance_id();
      }
    }
    (void)reader->Finish();
    auto span = [&](const char* from, const char* to) {
      return at.count(from) && at.count(to) ? absl::ToDoubleSeconds(at[to] - at[from]) : 0.0;
    };
    t.pickup =
        at.count("deployment.started") ? absl::ToDoubleSeconds(at["deployment.started"] - t0) : 0;
    t.create = span("deployment.started", "instance.created");
    t.switched = span("instance.healthy", "deployment.live");
    t.ingress =
        at.count("deployment.live") ? absl::ToDoubleSeconds(serving - at["deployment.live"]) : 0;
    grpc::ClientContext list_ctx;
    v1::ListInstancesRequest list;
    list.set_service_id(spec_.service_id());
    list.set_deployment_id(deployment_id);
    v1::ListInstancesResponse instances;
    if (!deployer_->ListInstances(&list_ctx, list, &instances).ok()) Die("ListInstances failed");
    for (const v1::Instance& i : instances.instances()) {
      if (i.id() != instance || !healthy) continue;
      auto c = engine_.InspectContainer(i.provider_ref());
      if (c.ok() && c->started_at) t.app_start = absl::ToDoubleSeconds(*healthy - *c->started_at);
    }
    return t;
  }

  std::unique_ptr<v1::BuilderService::Stub> builder_;
  std::unique_ptr<v1::DeployerService::Stub> deployer_;
  engine::Engine engine_;
  const std::string ingress_, host_;
  v1::ServiceSpec spec_;
};

void Row(const char* name, const std::vector<double>& v) {
  Stats s = Summarize(v);
  std::printf("%-46s %8.3f %8.3f %8.3f %8.3f\n", name, s.median, s.mean, s.min, s.max);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const fs::path repo = fs::path(Env("C2D_LOCAL_REPO_ROOT")) / "bench-deploy-repo";
  fs::create_directories(repo);
  fs::copy(Env("C2D_BENCH_SAMPLE"), repo,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  Git({"init", "-q", "-b", "main"}, repo);
  Git({"add", "-A"}, repo);
  Git({"commit", "-q", "-m", "sample"}, repo);

  Bench bench;
  const v1::Build a = bench.BuildSample(repo, "1.0.0-a"), b = bench.BuildSample(repo, "1.0.0-b");
  // Warm-up: a goes live (the engine already has both images: it built them).
  std::string live_a = bench.Deploy(a, "1.0.0-a").deployment_id;

  std::vector<double> deploy_total, deploy_app, deploy_over, rb_total, rb_app, rb_over;
  std::vector<Bench::Timing> all;
  for (int round = 0; round < rounds; ++round) {
    Bench::Timing d = bench.Deploy(b, "1.0.0-b");
    deploy_total.push_back(d.total);
    deploy_app.push_back(d.app_start);
    deploy_over.push_back(d.total - d.app_start);
    all.push_back(d);
    Bench::Timing r = bench.Rollback(live_a, "1.0.0-a");
    rb_total.push_back(r.total);
    rb_app.push_back(r.app_start);
    rb_over.push_back(r.total - r.app_start);
    all.push_back(r);
    live_a = r.deployment_id;
  }
  std::printf("deploy benchmark: the sample app (examples/hello-python), 1 instance, %d rounds\n",
              rounds);
  std::printf("%-46s %8s %8s %8s %8s\n", "seconds", "median", "mean", "min", "max");
  Row("deploy: Deploy -> new version serving", deploy_total);
  Row("  the app's own start (first check - start)", deploy_app);
  Row("  c2d's overhead", deploy_over);
  Row("rollback: Rollback -> old version serving", rb_total);
  Row("  the app's own start", rb_app);
  Row("  c2d's overhead", rb_over);
  std::vector<double> rpc, pickup, create, switched, ingress;
  for (const Bench::Timing& t : all) {
    rpc.push_back(t.rpc);
    pickup.push_back(t.pickup);
    create.push_back(t.create);
    switched.push_back(t.switched);
    ingress.push_back(t.ingress);
  }
  std::printf("c2d's steps, deploys and rollbacks together:\n");
  Row("  the Deploy/Rollback call", rpc);
  Row("  call -> deploy job started", pickup);
  Row("  job started -> container created and started", create);
  Row("  first passing check -> live (switch)", switched);
  Row("  live -> the ingress serves it", ingress);
  const double over = Summarize(deploy_over).median, rb = Summarize(rb_over).median;
  std::printf(
      "target: deploy overhead < 1 s: %s; rollback to serving < 2 s plus the health gate: %s\n",
      over < 1 ? "met" : "NOT met", rb < 2 ? "met" : "NOT met");
  return 0;
}
