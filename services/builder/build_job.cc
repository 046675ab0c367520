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

absl::Status BuildJob::Run(jobs::JobContext& ctx) {
  v1::BuildJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.build_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("build job payload names no build"));
  }
  const std::string& build_id = payload.build_id();
  log::Scope scope(nlohmann::json{{"build_id", build_id}});
  auto build_or = pool_.Transact("load build", [&](pg::Tx& tx) { return GetBuild(tx, build_id); });
  if (absl::IsNotFound(build_or.status())) return jobs::Permanent(build_or.status());
  if (!build_or.ok()) return build_or.status();
  v1::Build build = std::move(*build_or);
  if (auto s = UnsealRepoUrl(build); !s.ok()) return s;
  if (build.state() == v1::BUILD_STATE_SUCCEEDED || build.state() == v1::BUILD_STATE_FAILED ||
      build.state() == v1::BUILD_STATE_CANCELLED) {
    // A repeated job after the outcome was recorded: only a deploy may be owed.
    return Deploy(build);
  }
  auto running =
      pool_.Transact("start build", [&](pg::Tx& tx) { return MarkRunning(tx, build_id); });
  if (!running.ok()) return running.status();

  auto secrets = Secrets(build);
  if (!secrets.ok()) {
    (void)pool_.Transact("fail build", [&](pg::Tx& tx) {
      return MarkFailed(tx, build_id, std::string(secrets.status().message())).status();
    });
    Metrics().builds.Add({{"result", "failed"}}).Increment();
    return absl::OkStatus();
  }
  BuildLog blog(pool_, build_id, std::move(*secrets));
  if (ctx.job().attempts > 1) {
    blog.System(absl::StrCat("==> restarting the build (attempt ", ctx.job().attempts, ")"));
  }
  const absl::Time started = absl::Now();
  const absl::Time deadline = started + absl::FromChrono(config_.build_timeout);
  const std::atomic<bool>* cancel = ctx.cancel_flag();
  auto step_done = [&](const char* step, absl::Time since) {
    absl::Duration d = absl::Now() - since;
    Metrics()
        .steps.Add({{"step", step}}, metrics::DurationBuckets())
        .Observe(absl::ToDoubleSeconds(d));
    blog.System(absl::StrCat("==> ", step, " done in ", Seconds(d)));
  };
  auto remaining = [&] {
    return std::max(std::chrono::milliseconds(1),
                    absl::ToChronoMilliseconds(deadline - absl::Now()));
  };
  // Maps an error of a step to the build's outcome, or to a retry (nullopt)
  // for infrastructure trouble when attempts remain.
  auto judge = [&](const absl::Status& s, const std::string& what) -> std::optional<Outcome> {
    if (absl::IsCancelled(s) || ctx.cancelled()) return Outcome{Outcome::kCancelled, "cancelled"};
    if (absl::IsDeadlineExceeded(s) && absl::Now() >= deadline - absl::Seconds(1)) {
      return Outcome{
          Outcome::kFailed,
          absl::StrCat("build timed out after ", Seconds(absl::FromChrono(config_.build_timeout)),
                       " (C2D_BUILD_TIMEOUT)")};
    }
    if ((absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) &&
        ctx.job().attempts < ctx.job().max_attempts) {
      return std::nullopt;
    }
    return Outcome{Outcome::kFailed, absl::StrCat(what, ": ", s.message())};
  };
  // A git step's error: what the repository's owner can fix (missing
  // repository, branch or commit, a refused URL) fails the build at once.
  auto judge_git = [&](const absl::Status& s, const std::string& what) -> std::optional<Outcome> {
    const bool users =
        absl::IsNotFound(s) || absl::IsFailedPrecondition(s) || absl::IsInvalidArgument(s);
    if (users && !ctx.cancelled()) return Outcome{Outcome::kFailed, std::string(s.message())};
    return judge(s, what);
  };

  ScopedDir work{fs::path(config_.work_dir) / build_id};
  std::error_code ec;
  fs::remove_all(work.path, ec);
  fs::create_directories(work.path, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot create ", work.path.string(), ": ", ec.message()));

  std::optional<Outcome> outcome;
  std::string digest;
  int64_t size_bytes = 0;
  const std::string repository = build.image_repository();
  const std::string repo_path = repository.substr(repository.find('/') + 1);
  // ---- resolve: the branch head, unless a commit was asked for; a commit
  // built before is released from that build's image.
  bool resolved = true;
  auto earlier = ResolveCommit(build, blog,
                               {.local_repo_root = config_.local_repo_root,
                                .timeout = std::min(config_.git_timeout, remaining()),
                                .cancel = cancel,
                                .on_line = [&](absl::string_view l) { blog.Line("stdout", l); }});
  if (!earlier.ok()) {
    outcome = judge_git(earlier.status(), "cannot read the repository");
    resolved = false;
  } else if (*earlier) {
    auto reused = ReuseImage(**earlier, blog, deadline, cancel);
    if (reused.ok()) {
      digest = reused->image_digest();
      size_bytes = reused->image_size_bytes();
      outcome = Outcome{Outcome::kSucceeded, ""};
    } else {
      outcome = absl::IsCancelled(reused.status()) || absl::IsDeadlineExceeded(reused.status())
                    ? judge(reused.status(), "waiting for the earlier build")
                    : Outcome{Outcome::kFailed, std::string(reused.status().message())};
    }
    resolved = false;
  }
  do {
    if (!resolved) break;  // the build's outcome is known already
    // ---- clone
    absl::Time t = absl::Now();
    blog.System(absl::StrCat("==> clone ", RedactUrl(build.source().repo_url()), " at ",
                             build.commit_sha().substr(0, 12)));
    GitOptions git{.local_repo_root = config_.local_repo_root,
                   .timeout = std::min(config_.git_timeout, remaining()),
                   .cancel = cancel,
                   .on_line = [&](absl::string_view l) { blog.Line("stdout", l); }};
    const fs::path checkout = work.path / "src";
    absl::Status s = CheckoutCommit(build.source().repo_url(), build.commit_sha(), checkout, git);
    if (!s.ok()) {
      outcome = judge_git(s, "clone failed");
      break;
    }
    if (auto info = ReadCommit(checkout, git); info.ok()) {
      blog.System(absl::StrCat("    ", info->author, ": ", info->subject));
      (void)pool_.Transact("record commit", [&](pg::Tx& tx) {
        return RecordCommit(tx, build_id, info->author, info->subject);
      });
    }
    step_done("clone", t);

    // ---- detect
    t = absl::Now();
    auto app_dir_or =
        ResolveInside(checkout, build.source().root_dir(), PathKind::kDirectory, "root_dir");
    if (!app_dir_or.ok()) {
      outcome = Outcome{Outcome::kFailed, std::string(app_dir_or.status().message())};
      break;
    }
    const fs::path app_dir = *app_dir_or;
    auto plan =
        PlanBuild({.app_dir = app_dir.string(),
                   .auto_strategy = build.settings().strategy() != v1::BUILD_STRATEGY_DOCKERFILE,
                   .dockerfile_path = build.settings().dockerfile_path(),
                   .build_command = build.settings().build_command(),
                   .start_command = build.spec().run().start_command()},
                  config_.stacks);
    if (!plan.ok()) {
      outcome = Outcome{Outcome::kFailed, std::string(plan.status().message())};
      break;
    }
    blog.System(absl::StrCat("    ", plan->reason));
    if (!plan->generated.empty()) {
      blog.System("    generated Dockerfile:");
      for (absl::string_view line : absl::StrSplit(plan->generated, '\n', absl::SkipEmpty())) {
        blog.System(absl::StrCat("      ", line));
      }
    }
    step_done("detect", t);

    // ---- build
    t = absl::Now();
    blog.System("==> build");
    // The generated Dockerfile goes into the archive, not the checkout,
    // where a symlink of that name could point anywhere.
    std::map<std::string, std::string> generated;
    if (!plan->generated.empty()) generated[plan->dockerfile] = plan->generated;
    auto tar = engine::TreeTar::Open(app_dir.string(), config_.max_context_bytes, generated);
    if (!tar.ok()) {
      outcome = Outcome{Outcome::kFailed, std::string(tar.status().message())};
      break;
    }
    blog.System(absl::StrCat("    context: ", Bytes((*tar)->size())));
    const std::string tag_build = absl::StrCat(repository, ":", build_id);
    // The build's steps run in a cgroup of their own below the engine's,
    // with the memory limit (rootless runc cannot set one), and are killed
    // with it when the build ends.
    const std::string cgroup = absl::StrCat(config_.engine_cgroup.empty() ? "" : "/",
                                            config_.engine_cgroup, "/c2d-build-", build_id);
    if (s = PrepareBuildCgroup(cgroup); !s.ok()) {
      int none = 0;
      (void)engine::KillCgroup(cgroup, std::chrono::seconds(1), &none);  // removes what was made
      outcome = judge(s, "cannot prepare the build's cgroup");
      break;
    }
    // Generated Dockerfiles start FROM a stack image c2d knows: make sure the
    // engine has it, so that the build itself needs no registry round trips
    // (credentials make the engine check the registry on every build). An
    // app's own Dockerfile may name any private image: it gets credentials.
    const engine::RegistryAuth auth = Credentials(build, repo_path, deadline + absl::Minutes(5));
    std::vector<engine::RegistryAuth> registries;
    if (plan->generated.empty()) {
      registries.push_back(auth);
    } else if (const std::string& stack = config_.stacks.images.at(plan->language);
               absl::IsNotFound(engine_.InspectImage(stack).status())) {
      blog.System(absl::StrCat("    pulling ", stack));
      if (s = engine_.Pull(stack, auth, remaining()); !s.ok()) {
        outcome = judge(s, absl::StrCat("cannot pull the stack image ", stack));
        break;
      }
    }
    auto image =
        engine_.Build([&](char* buf, size_t n) { return (*tar)->Read(buf, n); }, (*tar)->size(),
                      {.tag = tag_build,
                       .dockerfile = plan->dockerfile,
                       .registries = std::move(registries),
                       .cgroup_parent = absl::StrCat(cgroup, "/steps"),
                       .sandboxed = true,
                       // The app's own FROM images: the registry decides.
                       .always_pull = plan->generated.empty(),
                       .timeout = remaining(),
                       .cancel = cancel,
                       .on_log = [&](absl::string_view l) { blog.Line("stdout", l); }});
    const bool out_of_memory = engine::ReachedMemoryLimit(cgroup);
    // Whatever the outcome, no step of this build may go on running.
    int killed = 0;
    if (auto k = engine::KillCgroup(cgroup, std::chrono::seconds(10), &killed); !k.ok()) {
      log::Error("cannot stop the build's processes", {{"error", k.ToString()}});
    } else if (killed > 0) {
      blog.System(absl::StrCat("    stopped ", killed, " process(es) the build left running"));
    }
    if (!image.ok() && out_of_memory) {
      outcome = Outcome{Outcome::kFailed,
                        absl::StrCat("a build step ran out of memory: builds may use ",
                                     Bytes(config_.build_memory_bytes), " (C2D_BUILD_MEMORY_MB)")};
      break;
    }
    if (!image.ok()) {
      outcome = absl::IsFailedPrecondition(image.status())
                    ? std::optional<Outcome>(
                          Outcome{Outcome::kFailed, std::string(image.status().message())})
                    : judge(image.status(), "build failed");
      break;
    }
    step_done("build", t);

    // ---- push: tagged with the build id and the commit sha
    t = absl::Now();
    blog.System(absl::StrCat("==> push ", repository));
    s = engine_.Push(
        repository, build_id, auth, [&](absl::string_view l) { blog.Line("stdout", l); },
        remaining(), cancel);
    if (!s.ok()) {
      outcome = judge(s, "push failed");
      break;
    }
    auto manifest = registry_.GetManifest(repo_path, build_id);
    if (!manifest.ok()) {
      outcome = judge(manifest.status(), "cannot read the pushed image");
      break;
    }
    // The commit tag names the same manifest: set in the registry, no second push.
    s = registry_.PutManifest(repo_path, build.commit_sha(), *manifest);
    if (!s.ok()) {
      outcome = judge(s, "cannot tag the image with its commit");
      break;
    }
    digest = manifest->digest;
    size_bytes = manifest->total_size;
    Metrics().image_bytes.Observe(static_cast<double>(size_bytes));
    if (size_bytes > config_.max_image_bytes) {
      (void)registry_.DeleteManifest(repo_path, digest);
      outcome = Outcome{Outcome::kFailed,
                        absl::StrCat("image is ", Bytes(size_bytes), ", more than the limit of ",
                                     Bytes(config_.max_image_bytes), " (C2D_MAX_IMAGE_BYTES)")};
      break;
    }
    blog.System(absl::StrCat("    ", repository, "@", digest, " (", Bytes(size_bytes), ")"));
    step_done("push", t);
    outcome = Outcome{Outcome::kSucceeded, ""};
  } while (false);

  if (!outcome) {
    blog.System(
        "==> the repository, container engine or registry is unavailable; the build will be "
        "retried");
    blog.Close();
    return absl::UnavailableError("build infrastructure unavailable; retrying");
  }
  // Every log line is stored before the final state: a follower stops
  // reading once it sees the build final.
  absl::StatusOr<bool> recorded = true;
  switch (outcome->kind) {
    case Outcome::kSucceeded:
      blog.System(absl::StrCat("==> build succeeded in ", Seconds(absl::Now() - started)));
      blog.Close();
      recorded = pool_.Transact("record success", [&](pg::Tx& tx) {
        return MarkSucceeded(tx, build_id, repository, digest, size_bytes);
      });
      Metrics().builds.Add({{"result", "succeeded"}}).Increment();
      break;
    case Outcome::kFailed:
      blog.System(absl::StrCat("==> build failed: ", blog.Redact(outcome->reason)));
      blog.Close();
      recorded = pool_.Transact("record failure", [&](pg::Tx& tx) {
        return MarkFailed(tx, build_id, blog.Redact(outcome->reason));
      });
      Metrics().builds.Add({{"result", "failed"}}).Increment();
      break;
    case Outcome::kCancelled: {
      // Cancelled by the user (the job row says so), or interrupted by a
      // shutdown: then the build stays running and the job runs it again.
      auto job =
          pool_.Transact("read job", [&](pg::Tx& tx) { return jobs::Get(tx, ctx.job().id); });
      if (job.ok() && job->state == jobs::State::kCancelled) {
        blog.System("==> build cancelled");
        blog.Close();
        recorded = pool_.Transact("record cancellation", [&](pg::Tx& tx) {
          return MarkCancelled(tx, build_id, "cancelled by request");
        });
        Metrics().builds.Add({{"result", "cancelled"}}).Increment();
      } else {
        blog.System("==> build interrupted; it will start over");
      }
      break;
    }
  }
  blog.Close();
  if (!recorded.ok()) return recorded.status();  // the job retries and re-records
  log::Info("build finished", {{"result", static_cast<int>(outcome->kind)}, {"digest", digest}});
  if (outcome->kind == Outcome::kSucceeded) {
    auto done = pool_.Transact("load build", [&](pg::Tx& tx) { return GetBuild(tx, build_id); });
    if (!done.ok()) return done.status();
    return Deploy(*done);
  }
  return outcome->kind == Outcome::kCancelled ? absl::CancelledError("build cancelled")
                                              : absl::OkStatus();
}

}  // namespace c2d::builder
