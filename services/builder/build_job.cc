#include "services/builder/build_job.h"

#include <pwd.h>

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/engine/cgroup.h"
#include "libs/engine/tar.h"
#include "libs/jobs/queue.h"
#include "libs/metrics/metrics.h"
#include "libs/oci/access.h"
#include "libs/rpc/proto_json.h"
#include "libs/rpc/server.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/builder/build_log.h"
#include "services/builder/build_store.h"
#include "services/builder/detect.h"
#include "services/builder/git.h"
#include "services/builder/paths.h"

namespace c2d::builder {
namespace {

namespace fs = std::filesystem;

struct BuildMetrics {
  prometheus::Family<prometheus::Counter>& builds;
  prometheus::Family<prometheus::Histogram>& steps;
  prometheus::Histogram& image_bytes;
};

BuildMetrics& Metrics() {
  static BuildMetrics* m = [] {
    auto& reg = metrics::Registry();
    auto& image = prometheus::BuildHistogram()
                      .Name("c2d_build_image_bytes")
                      .Help("Compressed size of pushed images")
                      .Register(reg);
    return new BuildMetrics{
        prometheus::BuildCounter()
            .Name("c2d_builds_total")
            .Help("Finished builds, by result")
            .Register(reg),
        prometheus::BuildHistogram()
            .Name("c2d_build_step_seconds")
            .Help("Duration of build steps (clone, detect, build, push)")
            .Register(reg),
        image.Add({}, prometheus::Histogram::BucketBoundaries{1e6, 1e7, 5e7, 1e8, 2.5e8, 5e8, 1e9,
                                                              2e9, 4e9}),
    };
  }();
  return *m;
}

std::string Seconds(absl::Duration d) { return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(d)); }

// 512 B, 64.0 KiB, 1.5 MiB, 2.0 GiB.
std::string Bytes(int64_t n) {
  if (n < 1024) return absl::StrCat(n, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, units[u]);
}

// A build outcome that ends the job without a retry.
struct Outcome {
  enum Kind { kSucceeded, kFailed, kCancelled } kind;
  std::string reason;
};

// Removes a directory tree when it goes out of scope.
struct ScopedDir {
  fs::path path;
  ~ScopedDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

BuildJob::BuildJob(pg::Pool& pool, const Config& config)
    : pool_(pool),
      config_(config),
      engine_(config.engine_socket),
      registry_(oci::RegistryOptions{.url = config.registry_url,
                                     .username = config.registry_user,
                                     .password = config.registry_password}) {
  if (config.deployer_addr.empty()) return;
  auto credentials = rpc::ChannelCredentialsFromEnv();
  if (!credentials.ok()) {
    log::Error("builds cannot be deployed", {{"error", credentials.status().ToString()}});
    return;
  }
  deployer_ = v1::DeployerService::NewStub(rpc::Channel(config.deployer_addr, *credentials));
}

absl::Status BuildJob::PrepareBuildCgroup(const std::string& cgroup) const {
  // "UID:GID" names the build user by number: a builder in a container does
  // not have the host's user database.
  std::vector<std::string> ids = absl::StrSplit(config_.build_user, ':');
  uint32_t uid = 0, gid = 0;
  if (ids.size() == 2 && absl::SimpleAtoi(ids[0], &uid) && absl::SimpleAtoi(ids[1], &gid)) {
    return engine::PrepareCgroup(cgroup, uid, gid, config_.build_memory_bytes);
  }
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(config_.build_user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 ||
      found == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the build user ", config_.build_user, " does not exist (C2D_BUILD_USER)"));
  }
  return engine::PrepareCgroup(cgroup, pw.pw_uid, pw.pw_gid, config_.build_memory_bytes);
}

absl::StatusOr<std::vector<std::string>> BuildJob::Secrets(const v1::Build& build) const {
  std::vector<std::string> secrets;
  for (const v1::EnvVar& var : build.spec().env()) {
    if (!var.secret()) continue;
    crypto::Sealed sealed{var.value().key_id(), var.value().wrapped_data_key(), var.value().nonce(),
                          var.value().ciphertext()};
    auto plain = config_.master_keys->Open(sealed, crypto::EnvVarAad(var.key()));
    if (!plain.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot decrypt env var ", var.key(), ": ", plain.status().message()));
    }
    secrets.push_back(std::move(*plain));
  }
  // A token inside the repository URL is a secret too.
  if (std::string url = build.source().repo_url(); RedactUrl(url) != url) {
    size_t at = url.find('@'), scheme = url.find("://");
    std::string userinfo = url.substr(scheme + 3, at - scheme - 3);
    secrets.push_back(userinfo);
    if (size_t colon = userinfo.find(':'); colon != std::string::npos) {
      secrets.push_back(userinfo.substr(colon + 1));
    }
  }
  return secrets;
}

engine::RegistryAuth BuildJob::Credentials(const v1::Build& build, const std::string& repo_path,
                                           absl::Time expires) const {
  return {oci::kGrantUser,
          oci::MintGrant(
              oci::GrantKey(config_.registry_password),
              {{.name = "c2d/stacks/*", .actions = {"pull"}},
               {.name = absl::StrCat(build.spec().project_name(), "/*"), .actions = {"pull"}},
               {.name = repo_path, .actions = {"pull", "push"}}},
              expires),
          config_.RegistryHost()};
}

absl::Status BuildJob::Deploy(const v1::Build& build) {
  if (build.skip_deploy() || !build.deployment_id().empty() ||
      build.state() != v1::BUILD_STATE_SUCCEEDED) {
    return absl::OkStatus();
  }
  // Lines after the final state are stored (not streamed live): they are
  // what a reader of the build's log finds afterwards.
  auto note = [&](const std::string& text) {
    (void)pool_.Transact("build log", [&](pg::Tx& tx) -> absl::Status {
      auto last = LastLogSeq(tx, build.id());
      if (!last.ok()) return last.status();
      return AppendLogs(tx, build.id(), *last + 1, {LogRow{0, "system", text, 0}});
    });
  };
  if (!deployer_) {
    note("==> not deployed: this builder has no deployer (C2D_DEPLOYER_ADDR)");
    return absl::OkStatus();
  }
  v1::DeployRequest request;
  request.set_service_id(build.service_id());
  request.set_build_id(build.id());
  request.set_image_repository(build.image_repository());
  request.set_image_digest(build.image_digest());
  *request.mutable_spec() = build.spec();
  request.set_request_id(build.id());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ctx.AddMetadata(rpc::kRequestIdKey, build.id());
  v1::Deployment deployment;
  grpc::Status s = deployer_->Deploy(&ctx, request, &deployment);
  if (s.ok()) {
    note(absl::StrCat("==> deploying: deployment ", deployment.id()));
    log::Info("build deployed", {{"deployment_id", deployment.id()}});
    return pool_.Transact("record deployment", [&](pg::Tx& tx) {
      return SetDeploymentId(tx, build.id(), deployment.id());
    });
  }
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      s.error_code() == grpc::StatusCode::ABORTED) {
    return absl::UnavailableError(absl::StrCat("the deployer is unavailable: ", s.error_message()));
  }
  note(absl::StrCat("==> not deployed: ", s.error_message()));
  log::Warn("the deployer refused the build", {{"error", s.error_message()}});
  return absl::OkStatus();
}

absl::Status BuildJob::UnsealRepoUrl(v1::Build& build) const {
  auto sealed =
      pool_.Transact("sealed url", [&](pg::Tx& tx) { return SealedRepoUrl(tx, build.id()); });
  if (!sealed.ok()) return sealed.status();
  if (sealed->empty()) return absl::OkStatus();
  auto url = rpc::OpenUrl(*config_.master_keys, *sealed, BuildRepoUrlAad(build.id()));
  if (!url.ok()) return jobs::Permanent(url.status());
  build.mutable_source()->set_repo_url(*url);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::Build>> BuildJob::ResolveCommit(v1::Build& build, BuildLog& blog,
                                                                 const GitOptions& git) {
  if (!build.source().commit().empty()) return std::optional<v1::Build>();  // asked for
  std::string commit = build.commit_sha();
  if (commit.empty()) {  // not resolved by an earlier attempt
    blog.System(absl::StrCat("==> resolve ", build.source().branch(), " of ",
                             RedactUrl(build.source().repo_url())));
    auto head = ResolveBranch(build.source().repo_url(), build.source().branch(), git);
    if (!head.ok()) return head.status();
    commit = *head;
  }
  auto adopted =
      pool_.Transact("adopt commit", [&](pg::Tx& tx) { return AdoptCommit(tx, build, commit); });
  if (!adopted.ok()) return adopted.status();
  build.set_commit_sha(commit);
  return std::move(adopted->earlier);
}

absl::StatusOr<v1::Build> BuildJob::ReuseImage(const v1::Build& earlier, BuildLog& blog,
                                               absl::Time deadline,
                                               const std::atomic<bool>* cancel) {
  blog.System(absl::StrCat("==> commit ", earlier.commit_sha().substr(0, 12), " was built by ",
                           earlier.id(), ": releasing its image"));
  v1::Build b = earlier;
  // An earlier build still running is waited for, as long as this one may take.
  while (b.state() == v1::BUILD_STATE_QUEUED || b.state() == v1::BUILD_STATE_RUNNING) {
    if (cancel != nullptr && cancel->load()) return absl::CancelledError("cancelled");
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("the earlier build is late");
    absl::SleepFor(absl::Seconds(1));
    auto now = pool_.Transact("load build", [&](pg::Tx& tx) { return GetBuild(tx, earlier.id()); });
    if (!now.ok()) return now.status();
    b = std::move(*now);
  }
  if (b.state() != v1::BUILD_STATE_SUCCEEDED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the build of this commit (", b.id(),
        ") did not succeed: ", b.failure_reason().empty() ? "cancelled" : b.failure_reason()));
  }
  blog.System(absl::StrCat("    ", b.image_repository(), "@", b.image_digest()));
  return b;
}

// One run of a build job: what its steps share. A step that stops has set
// `outcome`, the build's, or left it empty: the job is to be retried.
struct BuildJob::Attempt {
  Attempt(jobs::JobContext& c, const Config& cfg, pg::Pool& pool, v1::Build b,
          std::vector<std::string> secrets)
      : ctx(c),
        config(cfg),
        build(std::move(b)),
        blog(pool, build.id(), std::move(secrets)),
        started(absl::Now()),
        deadline(started + absl::FromChrono(cfg.build_timeout)),
        work(fs::path(cfg.work_dir) / build.id()),
        repository(build.image_repository()),
        repo_path(repository.substr(repository.find('/') + 1)) {}

  std::chrono::milliseconds Remaining() const {
    return std::max(std::chrono::milliseconds(1),
                    absl::ToChronoMilliseconds(deadline - absl::Now()));
  }
  GitOptions Git() {
    return {.local_repo_root = config.local_repo_root,
            .timeout = std::min(config.git_timeout, Remaining()),
            .cancel = ctx.cancel_flag(),
            .on_line = [this](absl::string_view l) { blog.Line("stdout", l); }};
  }
  void StepDone(const char* step, absl::Time since) {
    absl::Duration d = absl::Now() - since;
    Metrics()
        .steps.Add({{"step", step}}, metrics::DurationBuckets())
        .Observe(absl::ToDoubleSeconds(d));
    blog.System(absl::StrCat("==> ", step, " done in ", Seconds(d)));
  }
  // Stops the steps with `o` as the outcome (none: retry).
  bool Stop(std::optional<Outcome> o) {
    outcome = std::move(o);
    return false;
  }
  bool Fail(absl::string_view reason) {
    return Stop(Outcome{Outcome::kFailed, std::string(reason)});
  }
  // Maps an error of a step to the build's outcome, or to a retry (nullopt)
  // for infrastructure trouble when attempts remain.
  std::optional<Outcome> Judge(const absl::Status& s, const std::string& what) const {
    if (absl::IsCancelled(s) || ctx.cancelled()) return Outcome{Outcome::kCancelled, "cancelled"};
    if (absl::IsDeadlineExceeded(s) && absl::Now() >= deadline - absl::Seconds(1)) {
      return Outcome{Outcome::kFailed, absl::StrCat("build timed out after ",
                                                    Seconds(absl::FromChrono(config.build_timeout)),
                                                    " (C2D_BUILD_TIMEOUT)")};
    }
    if ((absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) &&
        ctx.job().attempts < ctx.job().max_attempts) {
      return std::nullopt;
    }
    return Outcome{Outcome::kFailed, absl::StrCat(what, ": ", s.message())};
  }
  // A git step's error: what the repository's owner can fix (missing
  // repository, branch or commit, a refused URL) fails the build at once.
  std::optional<Outcome> JudgeGit(const absl::Status& s, const std::string& what) const {
    const bool users =
        absl::IsNotFound(s) || absl::IsFailedPrecondition(s) || absl::IsInvalidArgument(s);
    if (users && !ctx.cancelled()) return Outcome{Outcome::kFailed, std::string(s.message())};
    return Judge(s, what);
  }

  jobs::JobContext& ctx;
  const Config& config;
  v1::Build build;
  BuildLog blog;
  const absl::Time started;
  const absl::Time deadline;
  const fs::path work;
  const std::string repository;  // registry host and path
  const std::string repo_path;   // the path alone
  std::optional<Outcome> outcome;
  std::string digest;
  int64_t size_bytes = 0;
  fs::path checkout;          // Clone's
  fs::path app_dir;           // Detect's
  Plan plan;                  // Detect's
  engine::RegistryAuth auth;  // BuildImage's, for Push
};

absl::Status BuildJob::Run(jobs::JobContext& ctx) {
  v1::BuildJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.build_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("build job payload names no build"));
  }
  const std::string& build_id = payload.build_id();
  log::Scope scope(nlohmann::json{{"build_id", build_id}});
  auto build = pool_.Transact("load build", [&](pg::Tx& tx) { return GetBuild(tx, build_id); });
  if (absl::IsNotFound(build.status())) return jobs::Permanent(build.status());
  if (!build.ok()) return build.status();
  if (auto s = UnsealRepoUrl(*build); !s.ok()) return s;
  if (build->state() == v1::BUILD_STATE_SUCCEEDED || build->state() == v1::BUILD_STATE_FAILED ||
      build->state() == v1::BUILD_STATE_CANCELLED) {
    // A repeated job after the outcome was recorded: only a deploy may be owed.
    return Deploy(*build);
  }
  auto running =
      pool_.Transact("start build", [&](pg::Tx& tx) { return MarkRunning(tx, build_id); });
  if (!running.ok()) return running.status();
  auto secrets = Secrets(*build);
  if (!secrets.ok()) {
    (void)pool_.Transact("fail build", [&](pg::Tx& tx) {
      return MarkFailed(tx, build_id, std::string(secrets.status().message())).status();
    });
    Metrics().builds.Add({{"result", "failed"}}).Increment();
    return absl::OkStatus();
  }
  Attempt a(ctx, config_, pool_, std::move(*build), std::move(*secrets));
  if (ctx.job().attempts > 1) {
    a.blog.System(absl::StrCat("==> restarting the build (attempt ", ctx.job().attempts, ")"));
  }
  ScopedDir work{a.work};
  std::error_code ec;
  fs::remove_all(work.path, ec);
  fs::create_directories(work.path, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", work.path.string(), ": ", ec.message()));
  }
  if (Resolve(a) && Clone(a) && Detect(a) && BuildImage(a) && Push(a)) {
    a.outcome = Outcome{Outcome::kSucceeded, ""};
  }
  return Finish(a);
}

bool BuildJob::Resolve(Attempt& a) {
  auto earlier = ResolveCommit(a.build, a.blog, a.Git());
  if (!earlier.ok()) return a.Stop(a.JudgeGit(earlier.status(), "cannot read the repository"));
  if (!*earlier) return true;
  // A commit built before is released from that build's image.
  auto reused = ReuseImage(**earlier, a.blog, a.deadline, a.ctx.cancel_flag());
  if (reused.ok()) {
    a.digest = reused->image_digest();
    a.size_bytes = reused->image_size_bytes();
    return a.Stop(Outcome{Outcome::kSucceeded, ""});
  }
  if (absl::IsCancelled(reused.status()) || absl::IsDeadlineExceeded(reused.status())) {
    return a.Stop(a.Judge(reused.status(), "waiting for the earlier build"));
  }
  return a.Fail(reused.status().message());
}

bool BuildJob::Clone(Attempt& a) {
  const absl::Time t = absl::Now();
  a.blog.System(absl::StrCat("==> clone ", RedactUrl(a.build.source().repo_url()), " at ",
                             a.build.commit_sha().substr(0, 12)));
  GitOptions git = a.Git();
  a.checkout = a.work / "src";
  absl::Status s =
      CheckoutCommit(a.build.source().repo_url(), a.build.commit_sha(), a.checkout, git);
  if (!s.ok()) return a.Stop(a.JudgeGit(s, "clone failed"));
  if (auto info = ReadCommit(a.checkout, git); info.ok()) {
    a.blog.System(absl::StrCat("    ", info->author, ": ", info->subject));
    (void)pool_.Transact("record commit", [&](pg::Tx& tx) {
      return RecordCommit(tx, a.build.id(), info->author, info->subject);
    });
  }
  a.StepDone("clone", t);
  return true;
}

bool BuildJob::Detect(Attempt& a) {
  const absl::Time t = absl::Now();
  auto app_dir =
      ResolveInside(a.checkout, a.build.source().root_dir(), PathKind::kDirectory, "root_dir");
  if (!app_dir.ok()) return a.Fail(app_dir.status().message());
  a.app_dir = *app_dir;
  const v1::Build& b = a.build;
  auto plan = PlanBuild({.app_dir = a.app_dir.string(),
                         .auto_strategy = b.settings().strategy() != v1::BUILD_STRATEGY_DOCKERFILE,
                         .dockerfile_path = b.settings().dockerfile_path(),
                         .build_command = b.settings().build_command(),
                         .start_command = b.spec().run().start_command()},
                        config_.stacks);
  if (!plan.ok()) return a.Fail(plan.status().message());
  a.plan = std::move(*plan);
  a.blog.System(absl::StrCat("    ", a.plan.reason));
  if (!a.plan.generated.empty()) {
    a.blog.System("    generated Dockerfile:");
    for (absl::string_view line : absl::StrSplit(a.plan.generated, '\n', absl::SkipEmpty())) {
      a.blog.System(absl::StrCat("      ", line));
    }
  }
  a.StepDone("detect", t);
  return true;
}

bool BuildJob::BuildImage(Attempt& a) {
  const absl::Time t = absl::Now();
  a.blog.System("==> build");
  // The generated Dockerfile goes into the archive, not the checkout,
  // where a symlink of that name could point anywhere.
  std::map<std::string, std::string> generated;
  if (!a.plan.generated.empty()) generated[a.plan.dockerfile] = a.plan.generated;
  auto tar = engine::TreeTar::Open(a.app_dir.string(), config_.max_context_bytes, generated);
  if (!tar.ok()) return a.Fail(tar.status().message());
  a.blog.System(absl::StrCat("    context: ", Bytes((*tar)->size())));
  // The build's steps run in a cgroup of their own below the engine's,
  // with the memory limit (rootless runc cannot set one), and are killed
  // with it when the build ends.
  const std::string cgroup = absl::StrCat(config_.engine_cgroup.empty() ? "" : "/",
                                          config_.engine_cgroup, "/c2d-build-", a.build.id());
  if (absl::Status s = PrepareBuildCgroup(cgroup); !s.ok()) {
    int none = 0;
    (void)engine::KillCgroup(cgroup, std::chrono::seconds(1), &none);  // removes what was made
    return a.Stop(a.Judge(s, "cannot prepare the build's cgroup"));
  }
  a.auth = Credentials(a.build, a.repo_path, a.deadline + absl::Minutes(5));
  auto registries = BuildRegistries(a);
  if (!registries.ok()) return false;
  auto image =
      engine_.Build([&](char* buf, size_t n) { return (*tar)->Read(buf, n); }, (*tar)->size(),
                    {.tag = absl::StrCat(a.repository, ":", a.build.id()),
                     .dockerfile = a.plan.dockerfile,
                     .registries = std::move(*registries),
                     .cgroup_parent = absl::StrCat(cgroup, "/steps"),
                     .sandboxed = true,
                     // The app's own FROM images: the registry decides.
                     .always_pull = a.plan.generated.empty(),
                     .timeout = a.Remaining(),
                     .cancel = a.ctx.cancel_flag(),
                     .on_log = [&](absl::string_view l) { a.blog.Line("stdout", l); }});
  const bool out_of_memory = engine::ReachedMemoryLimit(cgroup);
  // Whatever the outcome, no step of this build may go on running.
  int killed = 0;
  if (auto k = engine::KillCgroup(cgroup, std::chrono::seconds(10), &killed); !k.ok()) {
    log::Error("cannot stop the build's processes", {{"error", k.ToString()}});
  } else if (killed > 0) {
    a.blog.System(absl::StrCat("    stopped ", killed, " process(es) the build left running"));
  }
  if (!image.ok() && out_of_memory) {
    return a.Fail(absl::StrCat("a build step ran out of memory: builds may use ",
                               Bytes(config_.build_memory_bytes), " (C2D_BUILD_MEMORY_MB)"));
  }
  if (absl::IsFailedPrecondition(image.status())) return a.Fail(image.status().message());
  if (!image.ok()) return a.Stop(a.Judge(image.status(), "build failed"));
  a.StepDone("build", t);
  return true;
}

absl::StatusOr<std::vector<engine::RegistryAuth>> BuildJob::BuildRegistries(Attempt& a) {
  // Generated Dockerfiles start FROM a stack image c2d knows: make sure the
  // engine has it, so that the build itself needs no registry round trips
  // (credentials make the engine check the registry on every build). An
  // app's own Dockerfile may name any private image: it gets credentials.
  if (a.plan.generated.empty()) return std::vector<engine::RegistryAuth>{a.auth};
  const std::string& stack = config_.stacks.images.at(a.plan.language);
  if (absl::IsNotFound(engine_.InspectImage(stack).status())) {
    a.blog.System(absl::StrCat("    pulling ", stack));
    if (absl::Status s = engine_.Pull(stack, a.auth, a.Remaining()); !s.ok()) {
      a.Stop(a.Judge(s, absl::StrCat("cannot pull the stack image ", stack)));
      return s;
    }
  }
  return std::vector<engine::RegistryAuth>{};
}

bool BuildJob::Push(Attempt& a) {
  // Tagged with the build id and the commit sha.
  const absl::Time t = absl::Now();
  a.blog.System(absl::StrCat("==> push ", a.repository));
  absl::Status s = engine_.Push(
      a.repository, a.build.id(), a.auth, [&](absl::string_view l) { a.blog.Line("stdout", l); },
      a.Remaining(), a.ctx.cancel_flag());
  if (!s.ok()) return a.Stop(a.Judge(s, "push failed"));
  auto manifest = registry_.GetManifest(a.repo_path, a.build.id());
  if (!manifest.ok()) return a.Stop(a.Judge(manifest.status(), "cannot read the pushed image"));
  // The commit tag names the same manifest: set in the registry, no second push.
  s = registry_.PutManifest(a.repo_path, a.build.commit_sha(), *manifest);
  if (!s.ok()) return a.Stop(a.Judge(s, "cannot tag the image with its commit"));
  a.digest = manifest->digest;
  a.size_bytes = manifest->total_size;
  Metrics().image_bytes.Observe(static_cast<double>(a.size_bytes));
  if (a.size_bytes > config_.max_image_bytes) {
    (void)registry_.DeleteManifest(a.repo_path, a.digest);
    return a.Fail(absl::StrCat("image is ", Bytes(a.size_bytes), ", more than the limit of ",
                               Bytes(config_.max_image_bytes), " (C2D_MAX_IMAGE_BYTES)"));
  }
  a.blog.System(absl::StrCat("    ", a.repository, "@", a.digest, " (", Bytes(a.size_bytes), ")"));
  a.StepDone("push", t);
  return true;
}

absl::Status BuildJob::Finish(Attempt& a) {
  if (!a.outcome) {
    a.blog.System(
        "==> the repository, container engine or registry is unavailable; the build will be "
        "retried");
    a.blog.Close();
    return absl::UnavailableError("build infrastructure unavailable; retrying");
  }
  absl::Status recorded = Record(a);
  a.blog.Close();
  if (!recorded.ok()) return recorded;  // the job retries and re-records
  const Outcome& outcome = *a.outcome;
  log::Info("build finished", {{"result", static_cast<int>(outcome.kind)}, {"digest", a.digest}});
  if (outcome.kind == Outcome::kSucceeded) {
    auto done =
        pool_.Transact("load build", [&](pg::Tx& tx) { return GetBuild(tx, a.build.id()); });
    if (!done.ok()) return done.status();
    return Deploy(*done);
  }
  return outcome.kind == Outcome::kCancelled ? absl::CancelledError("build cancelled")
                                             : absl::OkStatus();
}

absl::Status BuildJob::Record(Attempt& a) {
  // Every log line is stored before the final state: a follower stops
  // reading once it sees the build final.
  const std::string& id = a.build.id();
  const Outcome& outcome = *a.outcome;
  absl::StatusOr<bool> recorded = true;
  switch (outcome.kind) {
    case Outcome::kSucceeded:
      a.blog.System(absl::StrCat("==> build succeeded in ", Seconds(absl::Now() - a.started)));
      a.blog.Close();
      recorded = pool_.Transact("record success", [&](pg::Tx& tx) {
        return MarkSucceeded(tx, id, a.repository, a.digest, a.size_bytes);
      });
      Metrics().builds.Add({{"result", "succeeded"}}).Increment();
      break;
    case Outcome::kFailed:
      a.blog.System(absl::StrCat("==> build failed: ", a.blog.Redact(outcome.reason)));
      a.blog.Close();
      recorded = pool_.Transact("record failure", [&](pg::Tx& tx) {
        return MarkFailed(tx, id, a.blog.Redact(outcome.reason));
      });
      Metrics().builds.Add({{"result", "failed"}}).Increment();
      break;
    case Outcome::kCancelled: {
      // Cancelled by the user (the job row says so), or interrupted by a
      // shutdown: then the build stays running and the job runs it again.
      auto job =
          pool_.Transact("read job", [&](pg::Tx& tx) { return jobs::Get(tx, a.ctx.job().id); });
      if (job.ok() && job->state == jobs::State::kCancelled) {
        a.blog.System("==> build cancelled");
        a.blog.Close();
        recorded = pool_.Transact("record cancellation", [&](pg::Tx& tx) {
          return MarkCancelled(tx, id, "cancelled by request");
        });
        Metrics().builds.Add({{"result", "cancelled"}}).Increment();
      } else {
        a.blog.System("==> build interrupted; it will start over");
      }
      break;
    }
  }
  return recorded.status();
}

}  // namespace c2d::builder
