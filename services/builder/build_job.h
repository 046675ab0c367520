#pragma once

// The `build` job (queue builder): from a commit to an image in the
// registry. Steps: clone → detect → build → push, each logged with its
// duration. Failures a user can cause (repository, branch or commit missing,
// no way to build, a failing Dockerfile step, timeout, image too large) end
// the build FAILED with a one-line reason; cancellation ends it CANCELLED.
// Idempotent: a build already final is left alone, and a re-run after a
// crash starts the steps over, appending to the same log.

#include "absl/status/status.h"
#include "libs/engine/engine.h"
#include "libs/jobs/job.h"
#include "libs/oci/registry.h"
#include "libs/pg/pool.h"
#include "services/builder/config.h"

namespace c2d::builder {

class BuildJob {
 public:
  BuildJob(pg::Pool& pool, const Config& config);

  absl::Status Run(jobs::JobContext& ctx);

 private:
  pg::Pool& pool_;
  const Config& config_;
  engine::Engine engine_;
  oci::Registry registry_;
};

}  // namespace c2d::builder
