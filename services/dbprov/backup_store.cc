// The backups table (dbprov owns it; migrations 0001 and 0009).

#include "absl/strings/str_cat.h"
#include "libs/pg/rows.h"
#include "services/dbprov/store.h"

namespace c2d::dbprov {
namespace {

#define C2D_US(c) "(extract(epoch FROM " c ") * 1000000)::bigint"
#define C2D_BACKUP_COLUMNS \
  "id, database_id, state, kind, coalesce(object_key, ''), coalesce(size_bytes, 0), "       \
  "coalesce(sha256, ''), coalesce(failure_reason, ''), " C2D_US("created_at") ", " C2D_US( \
      "started_at") ", " C2D_US("finished_at") ", " C2D_US(                                \
      "verified_at") ", coalesce(verification, '')"

constexpr pg::Statement kInsert{"backups_insert",
                                "INSERT INTO backups (id, database_id, kind) VALUES ($1, $2, $3)"};
constexpr pg::Statement kGet{"backups_get",
                             "SELECT " C2D_BACKUP_COLUMNS " FROM backups WHERE id = $1"};
constexpr pg::Statement kList{"backups_list", "SELECT " C2D_BACKUP_COLUMNS R"sql(
FROM backups
WHERE database_id = $1
  AND ($2 = '' OR (created_at, id) < (SELECT created_at, id FROM backups WHERE id = $2))
ORDER BY created_at DESC, id DESC
LIMIT $3)sql"};
constexpr pg::Statement kRunning{"backups_running", R"sql(
UPDATE backups SET state = 'running', started_at = coalesce(started_at, now()), updated_at = now()
WHERE id = $1 AND state IN ('pending', 'running') RETURNING id)sql"};
constexpr pg::Statement kSucceeded{"backups_succeeded", R"sql(
WITH b AS (
  UPDATE backups SET state = 'succeeded', object_key = $2, size_bytes = $3, sha256 = $4,
                     verification = $5, verified_at = now(), finished_at = now(),
                     updated_at = now()
  WHERE id = $1 AND state = 'running' RETURNING database_id),
d AS (UPDATE databases SET last_backup_at = now() WHERE id IN (SELECT database_id FROM b))
SELECT 1 FROM b)sql"};
constexpr pg::Statement kFailed{"backups_failed", R"sql(
UPDATE backups SET state = 'failed', failure_reason = $2, finished_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('pending', 'running') RETURNING id)sql"};
constexpr pg::Statement kRestoring{"databases_restoring", R"sql(
UPDATE databases SET state = 'restoring', updated_at = now()
WHERE id = $1 AND state = 'available' RETURNING id)sql"};
constexpr pg::Statement kRestored{"databases_restored", R"sql(
UPDATE databases SET state = 'available', updated_at = now()
WHERE id = $1 AND state = 'restoring' RETURNING id)sql"};

constexpr pg::Statement kDue{"databases_backup_due", R"sql(
SELECT id, backup_schedule, next_backup_at IS NULL
FROM databases
WHERE state = 'available' AND backup_schedule <> ''
  AND (next_backup_at IS NULL OR next_backup_at <= now())
ORDER BY next_backup_at NULLS FIRST
LIMIT $1
FOR UPDATE SKIP LOCKED)sql"};
constexpr pg::Statement kNewestVerified{"databases_newest_verified_backup", R"sql(
SELECT id, (extract(epoch FROM coalesce(last_backup_at, created_at)) * 1000000)::bigint
FROM databases
WHERE state IN ('available', 'rotating', 'restoring') AND backup_schedule <> ''
ORDER BY id)sql"};
constexpr pg::Statement kSetNext{"databases_set_next_backup", R"sql(
UPDATE databases SET next_backup_at = to_timestamp($2::double precision / 1000000)
WHERE id = $1)sql"};
constexpr pg::Statement kEnded{"backups_ended_of_kind", R"sql(
SELECT id, state = 'succeeded', )sql" C2D_US("created_at") R"sql(
FROM backups
WHERE database_id = $1 AND kind = $2 AND state IN ('succeeded', 'failed')
ORDER BY created_at DESC, id DESC)sql"};
constexpr pg::Statement kDelete{"backups_delete", "DELETE FROM backups WHERE id = $1"};
constexpr pg::Statement kStopDeleting{"databases_stop_deleting", R"sql(
UPDATE databases SET state = 'available', failure_reason = $2, updated_at = now()
WHERE id = $1 AND state = 'deleting' RETURNING id)sql"};

const char* KindName(v1::BackupKind kind) {
  switch (kind) {
    case v1::BACKUP_KIND_SCHEDULED:
      return "scheduled";
    case v1::BACKUP_KIND_FINAL:
      return "final";
    default:
      return "manual";
  }
}

v1::BackupKind ParseKind(const std::string& s) {
  if (s == "scheduled") return v1::BACKUP_KIND_SCHEDULED;
  if (s == "final") return v1::BACKUP_KIND_FINAL;
  return v1::BACKUP_KIND_MANUAL;
}

v1::BackupState ParseState(const std::string& s) {
  if (s == "pending") return v1::BACKUP_STATE_PENDING;
  if (s == "running") return v1::BACKUP_STATE_RUNNING;
  if (s == "succeeded") return v1::BACKUP_STATE_SUCCEEDED;
  if (s == "failed") return v1::BACKUP_STATE_FAILED;
  return v1::BACKUP_STATE_UNSPECIFIED;
}

v1::Backup RowToBackup(const pqxx::row& r) {
  v1::Backup b;
  b.set_id(r[0].as<std::string>());
  b.set_database_id(r[1].as<std::string>());
  b.set_state(ParseState(r[2].as<std::string>()));
  b.set_kind(ParseKind(r[3].as<std::string>()));
  b.set_object_key(r[4].as<std::string>());
  b.set_size_bytes(r[5].as<int64_t>());
  b.set_sha256(r[6].as<std::string>());
  b.set_failure_reason(r[7].as<std::string>());
  pg::SetTime(r[8], b.mutable_created_at());
  pg::SetTime(r[9], b.mutable_started_at());
  pg::SetTime(r[10], b.mutable_finished_at());
  pg::SetTime(r[11], b.mutable_verified_at());
  b.set_verification(r[12].as<std::string>());
  return b;
}

}  // namespace

absl::Status InsertBackup(pg::Tx& tx, const NewBackup& b) {
  tx.Exec(kInsert, b.id, b.database_id, std::string(KindName(b.kind)));
  return absl::OkStatus();
}

absl::StatusOr<v1::Backup> GetBackup(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kGet, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("backup ", id, " does not exist"));
  return RowToBackup(r[0]);
}

absl::StatusOr<v1::ListBackupsResponse> ListBackups(pg::Tx& tx, const std::string& database_id,
                                                    const std::string& after, int page_size) {
  v1::ListBackupsResponse out;
  out.set_next_page_token(pg::FillPage(tx.Exec(kList, database_id, after, page_size + 1), page_size,
                                       [&](const pqxx::row& r) {
                                         v1::Backup* b = out.add_backups();
                                         *b = RowToBackup(r);
                                         return b->id();
                                       }));
  return out;
}

absl::StatusOr<bool> MarkBackupRunning(pg::Tx& tx, const std::string& id) {
  return !tx.Exec(kRunning, id).empty();
}

absl::StatusOr<bool> MarkBackupSucceeded(pg::Tx& tx, const std::string& id, const BackupResult& r) {
  return !tx.Exec(kSucceeded, id, r.object_key, r.size_bytes, r.sha256, r.verification).empty();
}

absl::StatusOr<bool> MarkBackupFailed(pg::Tx& tx, const std::string& id,
                                      const std::string& reason) {
  return !tx.Exec(kFailed, id, reason).empty();
}

absl::StatusOr<bool> MarkRestoring(pg::Tx& tx, const std::string& id) {
  return !tx.Exec(kRestoring, id).empty();
}

absl::StatusOr<bool> MarkRestored(pg::Tx& tx, const std::string& id) {
  return !tx.Exec(kRestored, id).empty();
}

absl::StatusOr<std::vector<DueBackup>> DueForBackup(pg::Tx& tx, int limit) {
  std::vector<DueBackup> out;
  for (const auto& r : tx.Exec(kDue, limit)) {
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<bool>()});
  }
  return out;
}

absl::StatusOr<std::vector<BackupFreshness>> NewestVerifiedBackups(pg::Tx& tx) {
  std::vector<BackupFreshness> out;
  for (const auto& r : tx.Exec(kNewestVerified)) {
    out.push_back({r[0].as<std::string>(), absl::FromUnixMicros(r[1].as<int64_t>())});
  }
  return out;
}

absl::Status SetNextBackup(pg::Tx& tx, const std::string& id, absl::Time at) {
  tx.Exec(kSetNext, id, absl::ToUnixMicros(at));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EndedBackup>> EndedBackups(pg::Tx& tx, const std::string& database_id,
                                                      v1::BackupKind kind) {
  std::vector<EndedBackup> out;
  for (const auto& r : tx.Exec(kEnded, database_id, std::string(KindName(kind)))) {
    out.push_back(
        {r[0].as<std::string>(), r[1].as<bool>(), absl::FromUnixMicros(r[2].as<int64_t>())});
  }
  return out;
}

absl::Status DeleteBackup(pg::Tx& tx, const std::string& id) {
  tx.Exec(kDelete, id);
  return absl::OkStatus();
}

absl::StatusOr<bool> StopDeleting(pg::Tx& tx, const std::string& id, const std::string& reason) {
  return !tx.Exec(kStopDeleting, id, reason).empty();
}

}  // namespace c2d::dbprov
