// c2d-bench-build: how long c2d takes to build the sample app end to end,
// next to the engine's own build (and push) of the same app, and c2d's
// overhead: the difference. Run through tools/bench/build, which starts the
// platform and a c2d-builder process.
//
// Each round commits a change to the sample (so no round is a cache hit of
// the last), then, in alternating order, (1) asks the builder over gRPC and
// waits until the build is final, (2) builds and pushes the same checkout
// directly through the engine API, with a nonce file so that neither reuses
// the other's layers. Both build on the rootless build engine, sandboxed.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/engine/engine.h"
#include "libs/engine/tar.h"
#include "proto/c2d/v1/builder.grpc.pb.h"
#include "services/builder/detect.h"
#include "tools/bench/stats.h"

namespace {

namespace fs = std::filesystem;
using namespace c2d;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    std::fprintf(stderr, "c2d-bench-build: %s is not set (run tools/bench/build)\n", name);
    std::exit(2);
  }
  return v;
}

void Run(const std::vector<std::string>& argv, const std::string& cwd) {
  auto r = RunCommand({.argv = argv,
                       .env = {{"GIT_AUTHOR_NAME", "bench"},
                               {"GIT_AUTHOR_EMAIL", "bench@c2d"},
                               {"GIT_COMMITTER_NAME", "bench"},
                               {"GIT_COMMITTER_EMAIL", "bench@c2d"}},
                       .cwd = cwd});
  if (!r.ok() || r->exit_code != 0) {
    std::fprintf(stderr, "%s failed: %s\n", argv[0].c_str(), r.ok() ? r->output.c_str() : "");
    std::exit(1);
  }
}

// Starts a build and waits until it is final.
v1::Build BuildOnce(v1::BuilderService::Stub& stub, const v1::StartBuildRequest& request) {
  grpc::ClientContext ctx;
  v1::StartBuildResponse started;
  grpc::Status s = stub.StartBuild(&ctx, request, &started);
  if (!s.ok()) {
    std::fprintf(stderr, "StartBuild: %s\n", s.error_message().c_str());
    std::exit(1);
  }
  v1::Build build;
  while (true) {
    grpc::ClientContext get_ctx;
    v1::GetBuildRequest get;
    get.set_id(started.build().id());
    if (stub.GetBuild(&get_ctx, get, &build).ok() &&
        (build.state() == v1::BUILD_STATE_SUCCEEDED || build.state() == v1::BUILD_STATE_FAILED)) {
      return build;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// A build whose context holds `mib` MiB of zeros (a few hundred KiB in git),
// so that the builder's peak memory with a large context can be read.
void BigContext(v1::BuilderService::Stub& stub, v1::StartBuildRequest request,
                const std::string& stack, int mib) {
  const fs::path repo = fs::path(Env("C2D_LOCAL_REPO_ROOT")) / "bench-big-context";
  fs::create_directories(repo);
  std::ofstream(repo / "Dockerfile") << "FROM " << stack << "\nLABEL bench=big-context\n";
  {
    std::ofstream zeros(repo / "zeros.bin", std::ios::binary);
    const std::string block(1 << 20, '\0');
    for (int i = 0; i < mib; ++i) zeros << block;
  }
  Run({"git", "init", "-q", "-b", "main"}, repo);
  Run({"git", "add", "-A"}, repo);
  Run({"git", "commit", "-q", "-m", "big"}, repo);
  fs::remove(repo / "zeros.bin");
  request.mutable_source()->set_repo_url(repo.string());
  const absl::Time t0 = absl::Now();
  v1::Build build = BuildOnce(stub, request);
  std::printf(
      "large context: %d MiB built in %.1f s (%s)\n", mib, absl::ToDoubleSeconds(absl::Now() - t0),
      build.state() == v1::BUILD_STATE_SUCCEEDED ? "succeeded" : build.failure_reason().c_str());
}

using bench::Stats;
using bench::Summarize;

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const std::string sample = Env("C2D_BENCH_SAMPLE");
  const std::string registry_url = Env("C2D_TEST_REGISTRY_URL");
  const std::string registry_host = registry_url.substr(registry_url.find("://") + 3);
  // The engine builds run on: rootless, each step sandboxed, as c2d builds.
  engine::Engine engine(Env("C2D_TEST_BUILD_ENGINE_SOCKET"));
  engine::RegistryAuth auth{Env("C2D_TEST_REGISTRY_USER"), Env("C2D_TEST_REGISTRY_PASSWORD"),
                            registry_host};
  auto stub = v1::BuilderService::NewStub(
      grpc::CreateChannel(Env("C2D_BUILDER_ADDR"), grpc::InsecureChannelCredentials()));

  // The sample app as a git repository of its own.
  const fs::path repo = fs::path(Env("C2D_LOCAL_REPO_ROOT")) / "bench-repo";
  fs::create_directories(repo);
  fs::copy(sample, repo, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  Run({"git", "init", "-q", "-b", "main"}, repo);
  Run({"git", "add", "-A"}, repo);
  Run({"git", "commit", "-q", "-m", "sample"}, repo);

  v1::StartBuildRequest request;
  request.set_service_id(Env("C2D_BENCH_SERVICE_ID"));
  request.mutable_source()->set_repo_url(repo.string());
  request.mutable_source()->set_branch("main");
  request.set_skip_deploy(true);
  v1::ServiceSpec* spec = request.mutable_spec();
  spec->set_service_id(request.service_id());
  spec->set_project_id(Env("C2D_BENCH_PROJECT_ID"));
  spec->set_project_name("bench");
  spec->set_service_name("hello");
  spec->mutable_run()->set_port(8080);

  builder::Stacks stacks = builder::Stacks::FromEnv(registry_host);
  std::vector<double> c2d_total, engine_build, engine_push;
  for (int round = 0; round <= rounds; ++round) {  // round 0 warms the caches
    std::ofstream(repo / "VERSION") << "1.0." << round << "-bench\n";
    Run({"git", "commit", "-q", "-am", absl::StrCat("round ", round)}, repo);

    // (1) c2d, end to end: StartBuild → build final.
    double total = 0;
    auto measure_c2d = [&]() -> bool {
      absl::Time t0 = absl::Now();
      v1::Build build = BuildOnce(*stub, request);
      total = absl::ToDoubleSeconds(absl::Now() - t0);
      if (build.state() != v1::BUILD_STATE_SUCCEEDED) {
        std::fprintf(stderr, "build failed: %s\n", build.failure_reason().c_str());
        return false;
      }

      return true;
    };
    // (2) the engine alone, same checkout and Dockerfile, a layer of its own.
    absl::Time t1, t2, t3;
    auto measure_engine = [&]() -> bool {
      auto plan = builder::PlanBuild({.app_dir = repo.string()}, stacks);
      auto tar = engine::TreeTar::Open(
          repo.string(), int64_t{1} << 30,
          {{plan->dockerfile, plan->generated}, {".bench-nonce", ids::New("n")}});
      if (!tar.ok()) {
        std::fprintf(stderr, "context: %s\n", tar.status().ToString().c_str());
        return false;
      }
      const std::string repository = absl::StrCat(registry_host, "/bench/baseline");
      const std::string tag = absl::StrCat("r", round);
      t1 = absl::Now();
      auto image =
          engine.Build([&](char* buf, size_t n) { return (*tar)->Read(buf, n); }, (*tar)->size(),
                       {.tag = absl::StrCat(repository, ":", tag),
                        .dockerfile = plan->dockerfile,
                        .sandboxed = true});
      t2 = absl::Now();
      absl::Status pushed = engine.Push(repository, tag, auth, nullptr, std::chrono::minutes(5));
      t3 = absl::Now();
      if (!image.ok() || !pushed.ok()) {
        std::fprintf(stderr, "baseline failed: %s %s\n", image.status().ToString().c_str(),
                     pushed.ToString().c_str());
        return false;
      }
      return true;
    };
    // Alternate which goes first, so that neither always meets a cold or a
    // warm engine.
    const bool ok =
        round % 2 == 0 ? measure_c2d() && measure_engine() : measure_engine() && measure_c2d();
    if (!ok) return 1;
    if (round == 0) continue;
    c2d_total.push_back(total);
    engine_build.push_back(absl::ToDoubleSeconds(t2 - t1));
    engine_push.push_back(absl::ToDoubleSeconds(t3 - t2));
  }

  Stats c = Summarize(c2d_total), b = Summarize(engine_build), p = Summarize(engine_push);
  std::vector<double> over_build, over_both;
  for (size_t i = 0; i < c2d_total.size(); ++i) {
    over_build.push_back(c2d_total[i] - engine_build[i]);
    over_both.push_back(c2d_total[i] - engine_build[i] - engine_push[i]);
  }
  Stats ob = Summarize(over_build), oa = Summarize(over_both);
  std::printf(
      "build benchmark: the sample app (examples/hello-python), %d rounds after a warm-up\n",
      rounds);
  std::printf("%-44s %8s %8s %8s %8s\n", "seconds", "median", "mean", "min", "max");
  auto row = [](const char* name, const Stats& s) {
    std::printf("%-44s %8.3f %8.3f %8.3f %8.3f\n", name, s.median, s.mean, s.min, s.max);
  };
  row("c2d: StartBuild -> image pushed (end to end)", c);
  row("engine alone: build", b);
  row("engine alone: push", p);
  row("c2d overhead over the engine's build", ob);
  row("c2d overhead over the engine's build + push", oa);
  std::printf("target: overhead over the engine's build + push < 0.5 s: %s\n",
              oa.median < 0.5 ? "met" : "NOT met");
  if (const char* mib = std::getenv("C2D_BENCH_CONTEXT_MIB"); mib != nullptr && *mib != '\0') {
    std::fflush(stdout);
    BigContext(*stub, request, stacks.images.at("static"), std::atoi(mib));
  }
  return 0;
}
