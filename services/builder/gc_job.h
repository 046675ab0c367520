#pragma once

// The `gc_images` job (DESIGN point 22): per service, keep the images of the
// newest C2D_GC_KEEP_BUILDS (10) succeeded builds and every digest a pending,
// deploying or live deployment uses; delete the other manifests through the
// registry API (the registry's own garbage collection frees the blobs).
// Idempotent: deleting a manifest already gone counts as done.

#include "absl/status/status.h"
#include "libs/jobs/job.h"
#include "libs/oci/registry.h"
#include "libs/pg/pool.h"
#include "services/builder/config.h"

namespace c2d::builder {

class GcJob {
 public:
  GcJob(pg::Pool& pool, const Config& config);
  absl::Status Run(jobs::JobContext& ctx);

  // The leader's periodic duty: enqueue one gc_images job for all services.
  void Schedule();

 private:
  absl::Status CollectService(const std::string& service_id, int* deleted);

  pg::Pool& pool_;
  const Config& config_;
  oci::Registry registry_;
};

}  // namespace c2d::builder
