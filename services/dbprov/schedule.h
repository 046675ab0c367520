#pragma once

// Scheduled backups and their retention (DESIGN point 15). The dbprov
// leader gives every available database with a backup_schedule its next
// time (databases.next_backup_at) and, when that time comes, records a
// scheduled backup and enqueues its backup_db job in the same transaction,
// then moves the time on: a leader that crashed halfway left either both or
// neither, and a missed time (dbprov down) gives one backup, not one per
// missed time. After a scheduled backup ends, retention prunes that
// database's scheduled backups; manual and final ones are never pruned.

#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "libs/objstore/objstore.h"
#include "libs/pg/pool.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "services/dbprov/store.h"

namespace c2d::dbprov {

// The scheduled backups retention keeps, from a database's ended ones
// (newest first): the newest successful backup of each of the `daily` most
// recent UTC days that have one, and of each of the `weekly` most recent ISO
// weeks (Monday to Sunday) that have one; failed ones (no data) for a week
// after `now`, so that their failure stays visible.
std::set<std::string> KeptBackups(const std::vector<EndedBackup>& newest_first, int daily,
                                  int weekly, absl::Time now);

class BackupScheduler {
 public:
  BackupScheduler(pg::Pool& pool, objstore::ObjectStore& store) : pool_(pool), store_(store) {}

  // One pass of the leader: schedules the due backups. Returns how many
  // backups it enqueued.
  int RunOnce();
  // Removes the scheduled backups of the database that retention does not
  // keep: the stored object, then the row (a crash in between leaves a row
  // whose object is gone; the next prune removes it).
  absl::Status Prune(const std::string& database_id);

 private:
  pg::Pool& pool_;
  objstore::ObjectStore& store_;
};

// c2d_database_last_verified_backup_timestamp_seconds{database}, read at
// each scrape (NewestVerifiedBackups), so every replica reports it alike and
// a deleted database's series goes with it. Nothing when the database does
// not answer.
class BackupFreshnessMetric final : public prometheus::Collectable {
 public:
  explicit BackupFreshnessMetric(pg::Pool& pool) : pool_(pool) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  pg::Pool& pool_;
};

}  // namespace c2d::dbprov
