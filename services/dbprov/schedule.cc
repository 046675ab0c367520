#include "services/dbprov/schedule.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "libs/common/cron.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/dbprov/backup_job.h"
#include "services/dbprov/database_service.h"

namespace c2d::dbprov {
namespace {

constexpr int kBatch = 100;
constexpr absl::Duration kKeepFailed = absl::Hours(24 * 7);

// The newest successful backup of each of the `n` most recent periods that
// have one, `period` mapping a backup to its period.
template <typename Period>
void KeepNewestPer(const std::vector<EndedBackup>& newest_first, int n, Period period,
                   std::set<std::string>& kept) {
  std::map<absl::CivilDay, bool> seen;
  for (const EndedBackup& b : newest_first) {
    if (!b.succeeded) continue;
    const absl::CivilDay p = period(absl::ToCivilDay(b.created_at, absl::UTCTimeZone()));
    if (seen.count(p)) continue;
    if (static_cast<int>(seen.size()) >= n) break;
    seen[p] = true;
    kept.insert(b.id);
  }
}

// Records a scheduled backup of the database and enqueues its job.
absl::Status Schedule(pg::Tx& tx, const std::string& database_id) {
  const std::string id = ids::New("bak");
  C2D_RETURN_IF_ERROR(InsertBackup(tx, {id, database_id, v1::BACKUP_KIND_SCHEDULED}));
  v1::BackupDbJob job;
  job.set_backup_id(id);
  return EnqueueJob(tx, "backup_db", job, BackupJobKey(id), 3);
}

}  // namespace

std::set<std::string> KeptBackups(const std::vector<EndedBackup>& newest_first, int daily,
                                  int weekly, absl::Time now) {
  std::set<std::string> kept;
  KeepNewestPer(
      newest_first, daily, [](absl::CivilDay d) { return d; }, kept);
  KeepNewestPer(
      newest_first, weekly,
      [](absl::CivilDay d) {
        // Monday of d's ISO week (absl's weekdays count from Monday).
        return d - static_cast<int>(absl::GetWeekday(d));
      },
      kept);
  for (const EndedBackup& b : newest_first) {
    if (!b.succeeded && now - b.created_at < kKeepFailed) kept.insert(b.id);
  }
  return kept;
}

int BackupScheduler::RunOnce() {
  const absl::Time now = absl::Now();
  auto made = pool_.Transact("schedule backups", [&](pg::Tx& tx) -> absl::StatusOr<int> {
    C2D_ASSIGN_OR_RETURN(std::vector<DueBackup> due, DueForBackup(tx, kBatch));
    int enqueued = 0;
    for (const DueBackup& d : due) {
      auto schedule = cron::Schedule::Parse(d.schedule);
      if (!schedule.ok()) {
        // Validated when it was set; never retried in a loop if not.
        log::Warn("backup schedule is not valid",
                  {{"database_id", d.database_id}, {"error", schedule.status().ToString()}});
        C2D_RETURN_IF_ERROR(SetNextBackup(tx, d.database_id, now + absl::Hours(24)));
        continue;
      }
      if (!d.first) {
        C2D_RETURN_IF_ERROR(Schedule(tx, d.database_id));
        ++enqueued;
      }
      C2D_RETURN_IF_ERROR(SetNextBackup(tx, d.database_id, schedule->Next(now)));
    }
    return enqueued;
  });
  if (!made.ok()) {
    log::Warn("schedule backups", {{"error", made.status().ToString()}});
    return 0;
  }
  if (*made > 0) log::Info("scheduled backups enqueued", {{"count", *made}});
  return *made;
}

std::vector<prometheus::MetricFamily> BackupFreshnessMetric::Collect() const {
  auto rows = pool_.Read("backup freshness", [](pg::Tx& tx) { return NewestVerifiedBackups(tx); });
  if (!rows.ok()) return {};
  prometheus::MetricFamily family{
      .name = "c2d_database_last_verified_backup_timestamp_seconds",
      .help =
          "When the newest verified backup of each database with a backup schedule was made "
          "(when the database was, before its first)",
      .type = prometheus::MetricType::Gauge};
  for (const BackupFreshness& f : *rows) {
    prometheus::ClientMetric m;
    m.label = {{.name = "database", .value = f.database_id}};
    m.gauge.value = static_cast<double>(absl::ToUnixMicros(f.newest)) / 1e6;
    family.metric.push_back(std::move(m));
  }
  return {std::move(family)};
}

absl::Status BackupScheduler::Prune(const std::string& database_id) {
  C2D_ASSIGN_OR_RETURN(DatabaseRow row, pool_.Read("database", [&](pg::Tx& tx) {
    return GetDatabase(tx, database_id);
  }));
  C2D_ASSIGN_OR_RETURN(std::vector<EndedBackup> ended,
                       pool_.Read("scheduled backups", [&](pg::Tx& tx) {
                         return EndedBackups(tx, database_id, v1::BACKUP_KIND_SCHEDULED);
                       }));
  const std::set<std::string> kept =
      KeptBackups(ended, row.db.retention_daily(), row.db.retention_weekly(), absl::Now());
  int pruned = 0;
  for (const EndedBackup& b : ended) {
    if (kept.count(b.id)) continue;
    C2D_RETURN_IF_ERROR(store_.Delete(BackupKey(database_id, b.id)));
    C2D_RETURN_IF_ERROR(
        pool_.Transact("prune backup", [&](pg::Tx& tx) { return DeleteBackup(tx, b.id); }));
    ++pruned;
  }
  if (pruned > 0) {
    log::Info("backups pruned", {{"database_id", database_id}, {"count", pruned}});
  }
  return absl::OkStatus();
}

}  // namespace c2d::dbprov
