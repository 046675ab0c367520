#pragma once

// Pushing the DNS service's records (PostgreSQL, the desired state) to the
// backend: whole zones by the `dns_sync` job and the leader's sweep (which
// also repairs a record changed or deleted behind c2d's back), single
// record sets right after an RPC changed them. Pushes of one zone are
// serialised by an advisory lock and read the records under it, so the
// backend ends with the last committed state whatever order they run in.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/dns/backend.h"
#include "libs/jobs/job.h"
#include "libs/jobs/worker.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/dns.pb.h"

namespace c2d::dns {

class Syncer {
 public:
  // `tag` marks the RRsets this installation writes (InstallationTag).
  Syncer(pg::Pool& pool, Backend& backend, std::string tag)
      : pool_(pool), backend_(backend), tag_(std::move(tag)) {}

  // Records the zones (an existing name is kept) and creates them in the
  // backend.
  absl::Status EnsureZones(const std::vector<std::pair<std::string, v1::ZoneKind>>& zones);
  // Makes the backend zone hold exactly the zone's records and records the
  // serial it pushed; returns how many record sets it had to change.
  absl::StatusOr<int> SyncZone(const std::string& zone_id);
  // Pushes the record sets (name, type) of the zone as committed now; a set
  // without records is deleted from the backend.
  absl::Status Push(const std::string& zone_id,
                    const std::vector<std::pair<std::string, v1::RecordType>>& sets);
  // The leader's pass: every zone exists in the backend and holds its records.
  void Sweep();

  // Registers `dns_sync` on the "dns" worker.
  void RegisterJobs(jobs::Worker& worker);

  const std::string& tag() const { return tag_; }

 private:
  absl::Status HandleSync(jobs::JobContext& ctx);

  pg::Pool& pool_;
  Backend& backend_;
  const std::string tag_;
};

}  // namespace c2d::dns
