#include "services/builder/gc_job.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "libs/common/log.h"
#include "libs/jobs/queue.h"
#include "libs/rpc/proto_json.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/builder/build_store.h"

namespace c2d::builder {

GcJob::GcJob(pg::Pool& pool, const Config& config)
    : pool_(pool),
      config_(config),
      registry_(oci::RegistryOptions{.url = config.registry_url,
                                     .username = config.registry_user,
                                     .password = config.registry_password}) {}

void GcJob::Schedule() {
  absl::Status s = pool_.Transact("schedule image gc", [](pg::Tx& tx) {
    return jobs::Enqueue(tx, {.queue = "builder",
                              .kind = "gc_images",
                              .max_attempts = 3,
                              .unique_key = "gc_images:all"})
        .status();
  });
  if (!s.ok()) log::Warn("cannot schedule image GC", {{"error", s.ToString()}});
}

absl::Status GcJob::CollectService(const std::string& service_id, int* deleted) {
  auto images = pool_.Transact("read images", [&](pg::Tx& tx) { return ImagesOf(tx, service_id); });
  if (!images.ok()) return images.status();
  std::set<std::string> keep(images->in_use.begin(), images->in_use.end());
  std::vector<std::string> candidates;
  std::set<std::string> seen;
  int kept_builds = 0;
  for (const std::string& digest : images->newest_first) {
    if (!seen.insert(digest).second) continue;
    if (kept_builds < config_.keep_builds) {
      keep.insert(digest);
      ++kept_builds;
    } else {
      candidates.push_back(digest);
    }
  }
  const std::string& repo = images->repository;
  const std::string repo_path = repo.substr(repo.find('/') + 1);
  for (const std::string& digest : candidates) {
    if (keep.contains(digest)) continue;
    absl::Status s = registry_.DeleteManifest(repo_path, digest);
    if (absl::IsNotFound(s)) continue;
    if (!s.ok()) return s;
    ++*deleted;
    log::Info("deleted image",
              {{"service_id", service_id}, {"image", absl::StrCat(repo, "@", digest)}});
  }
  return absl::OkStatus();
}

absl::Status GcJob::Run(jobs::JobContext& ctx) {
  v1::GcImagesJob payload;
  if (auto s = rpc::FromJson(ctx.job().payload, &payload); !s.ok()) return jobs::Permanent(s);
  std::vector<std::string> services;
  if (!payload.service_id().empty()) {
    services.push_back(payload.service_id());
  } else {
    auto all = pool_.Transact("list services with images",
                              [](pg::Tx& tx) { return ServicesWithImages(tx); });
    if (!all.ok()) return all.status();
    services = std::move(*all);
  }
  int deleted = 0;
  for (const std::string& service_id : services) {
    if (ctx.cancelled()) return absl::CancelledError("image GC interrupted");
    if (auto s = CollectService(service_id, &deleted); !s.ok()) return s;
  }
  log::Info("image GC done", {{"services", services.size()}, {"deleted", deleted}});
  return absl::OkStatus();
}

}  // namespace c2d::builder
