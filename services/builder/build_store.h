#pragma once

// The builder's tables (builds, build_logs): every statement the builder
// runs against them, and the mapping between rows and c2d.v1.Build.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/builder.pb.h"

namespace c2d::builder {

// LISTEN/NOTIFY channel announcing new log lines and state changes; the
// payload is the build id.
inline constexpr char kBuildLogChannel[] = "c2d_build_logs";

struct NewBuild {
  std::string id;
  v1::StartBuildRequest request;
  std::string commit_sha;
  std::string image_repository;
  // With credentials in the repository URL: the URL sealed (rpc::SealUrl),
  // and request.source.repo_url masked.
  std::string repo_url_sealed;
};

// The sealed repository URL of a build ("" when its URL has no credentials).
absl::StatusOr<std::string> SealedRepoUrl(pg::Tx& tx, const std::string& build_id);
// What a build's sealed URL is bound to.
inline std::string BuildRepoUrlAad(const std::string& build_id) {
  return "c2d/build/repo_url/" + build_id;
}

// Inserts the build and enqueues its `build` job in the same transaction.
// When a queued, running or succeeded build of the same (service, commit)
// exists, returns that one and `created` = false, and changes nothing.
absl::StatusOr<v1::StartBuildResponse> InsertBuild(pg::Tx& tx, const NewBuild& build);

// Gives a build of the branch head the commit it resolved. When a queued,
// running or succeeded build of that commit exists, the build reuses that
// one's image (reused_from) and `earlier` is it; otherwise the build builds.
struct Adopted {
  std::optional<v1::Build> earlier;
};
absl::StatusOr<Adopted> AdoptCommit(pg::Tx& tx, const v1::Build& build, const std::string& commit);

// Queued and running builds `requested_by` asked for; later callers for the
// same requester wait until this transaction ends.
absl::StatusOr<int64_t> BuildsInFlight(pg::Tx& tx, const std::string& requested_by);

absl::StatusOr<v1::Build> GetBuild(pg::Tx& tx, const std::string& id);

// Newest first; `page_token` is the last id of the previous page.
absl::StatusOr<v1::ListBuildsResponse> ListBuilds(pg::Tx& tx, const std::string& service_id,
                                                  int page_size, const std::string& page_token);

// State changes. Each applies only to a build that is not final yet and
// returns whether it did; each notifies kBuildLogChannel.
absl::StatusOr<bool> MarkRunning(pg::Tx& tx, const std::string& id);
absl::Status RecordCommit(pg::Tx& tx, const std::string& id, const std::string& author,
                          const std::string& message);
absl::StatusOr<bool> MarkSucceeded(pg::Tx& tx, const std::string& id, const std::string& repository,
                                   const std::string& digest, int64_t size_bytes);
absl::StatusOr<bool> MarkFailed(pg::Tx& tx, const std::string& id, const std::string& reason);
absl::StatusOr<bool> MarkCancelled(pg::Tx& tx, const std::string& id, const std::string& reason);

// Records the deployment a succeeded build started.
absl::Status SetDeploymentId(pg::Tx& tx, const std::string& id, const std::string& deployment_id);

// Cancels the build's queued or running job, if any.
absl::Status CancelBuildJob(pg::Tx& tx, const v1::Build& build);

struct LogRow {
  int64_t seq = 0;
  std::string stream;  // stdout, stderr, system
  std::string text;
  int64_t at_micros = 0;
};

absl::StatusOr<int64_t> LastLogSeq(pg::Tx& tx, const std::string& build_id);
// Appends lines seq+1, seq+2, … and notifies. Lines are cut to 8 KiB.
absl::Status AppendLogs(pg::Tx& tx, const std::string& build_id, int64_t first_seq,
                        const std::vector<LogRow>& rows);
absl::StatusOr<std::vector<LogRow>> ReadLogs(pg::Tx& tx, const std::string& build_id,
                                             int64_t after_seq, int limit);

// For image GC: digests of succeeded builds of `service_id`, newest first,
// and the digests its non-final deployments use.
struct ServiceImages {
  std::string repository;
  std::vector<std::string> newest_first;  // one per build, may repeat
  std::vector<std::string> in_use;
};
absl::StatusOr<std::vector<std::string>> ServicesWithImages(pg::Tx& tx);
absl::StatusOr<ServiceImages> ImagesOf(pg::Tx& tx, const std::string& service_id);

}  // namespace c2d::builder
