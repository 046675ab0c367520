#pragma once

// The `build` job (queue builder): from a commit to an image in the
// registry. Steps: resolve (a branch head's commit; a commit built before
// releases that build's image and skips the rest) → clone → detect → build
// → push, each logged with its duration. Failures a user can cause (repository, branch or commit
// missing, no way to build, a failing Dockerfile step, timeout, image too large) end the build
// FAILED with a one-line reason; cancellation ends it CANCELLED. A succeeded build is then deployed
// (DeployerService.Deploy with the build id as request id, so a repeat deploys once), unless
// skip_deploy; when the deployer cannot be reached the job is retried for that step alone.
// Idempotent: a build already final is left alone (but for a deploy still
// owed), and a re-run after a crash starts the steps over, appending to the
// same log.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/engine/engine.h"
#include "libs/jobs/job.h"
#include "libs/oci/registry.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/builder.pb.h"
#include "proto/c2d/v1/deployer.grpc.pb.h"
#include "services/builder/build_log.h"
#include "services/builder/config.h"
#include "services/builder/git.h"

namespace c2d::builder {

class BuildJob {
 public:
  BuildJob(pg::Pool& pool, const Config& config);

  absl::Status Run(jobs::JobContext& ctx);

 private:
  // The values the build's log must never show: its secret env values
  // (decrypted; FailedPrecondition when one cannot be) and any credentials
  // in its repository URL.
  absl::StatusOr<std::vector<std::string>> Secrets(const v1::Build& build) const;
  // The registry credentials of a build: a grant, until `expires`, to pull
  // the stack images and its own project's images and to push its own
  // service's repository (`repo_path`), nothing else.
  engine::RegistryAuth Credentials(const v1::Build& build, const std::string& repo_path,
                                   absl::Time expires) const;
  // Creates the cgroup a build's steps run in (engine::PrepareCgroup), with
  // the build memory limit, for the build engine's user.
  absl::Status PrepareBuildCgroup(const std::string& cgroup) const;
  // Puts the whole repository URL (unsealed) into the build, when it had
  // credentials.
  absl::Status UnsealRepoUrl(v1::Build& build) const;
  // Gives a build of a branch head its commit (resolved now, unless an
  // earlier attempt did) and returns the earlier build of that commit whose
  // image it is to release, if any (AdoptCommit).
  absl::StatusOr<std::optional<v1::Build>> ResolveCommit(v1::Build& build, BuildLog& blog,
                                                         const GitOptions& git);
  // The earlier build, once it has succeeded (waiting for it while it runs,
  // up to `deadline`); FailedPrecondition when it did not.
  absl::StatusOr<v1::Build> ReuseImage(const v1::Build& earlier, BuildLog& blog,
                                       absl::Time deadline, const std::atomic<bool>* cancel);
  // Deploys a succeeded build that owes a deployment; Unavailable to retry.
  absl::Status Deploy(const v1::Build& build);

  struct Attempt;  // one run's shared state (build_job.cc)
  // The steps of a run, in order. Each returns whether to go on; one that
  // stops has set the attempt's outcome, or left it empty to retry the job.
  bool Resolve(Attempt& a);
  bool Clone(Attempt& a);
  bool Detect(Attempt& a);
  bool BuildImage(Attempt& a);
  bool Push(Attempt& a);
  // BuildImage's registry credentials for the engine: none for a generated
  // Dockerfile, whose stack image is pulled here first when the engine
  // lacks it (an error has stopped the attempt).
  absl::StatusOr<std::vector<engine::RegistryAuth>> BuildRegistries(Attempt& a);
  // Records the outcome, after every log line, and deploys a success; or
  // answers Unavailable, for a retry, when the attempt has none.
  absl::Status Finish(Attempt& a);
  absl::Status Record(Attempt& a);

  pg::Pool& pool_;
  const Config& config_;
  engine::Engine engine_;
  oci::Registry registry_;
  std::unique_ptr<v1::DeployerService::Stub> deployer_;
};

}  // namespace c2d::builder
