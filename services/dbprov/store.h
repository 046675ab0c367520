#pragma once

// The databases table (dbprov owns it; see migrations/0001 and 0008).

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/crypto/seal.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/dbprov.pb.h"

namespace c2d::dbprov {

// A database row: the API's view plus what only dbprov reads.
struct DatabaseRow {
  v1::Database db;
  std::string provider_ref;
  crypto::Sealed admin_password, password_a, password_b;
};

// The aad that binds a database's sealed password ("admin", "a" or "b") to it.
std::string PasswordAad(const std::string& database_id, absl::string_view role);

// ALREADY_EXISTS when the project has a live database of that name;
// NOT_FOUND when the project does not exist.
absl::Status InsertDatabase(pg::Tx& tx, const DatabaseRow& row);
// NOT_FOUND for an unknown id (a deleted database is found, in state DELETED).
absl::StatusOr<DatabaseRow> GetDatabase(pg::Tx& tx, const std::string& id);
// Databases whose server should be running (available, rotating, restoring).
absl::StatusOr<std::vector<DatabaseRow>> ServedDatabases(pg::Tx& tx);
// A page of the project's databases that are not deleted, newest first,
// after the cursor `after` (an id; "" = from the start).
absl::StatusOr<v1::ListDatabasesResponse> ListDatabases(pg::Tx& tx, const std::string& project_id,
                                                        const std::string& after, int page_size);
// State changes; each returns false when the row was not in a state the
// change applies to (so a job run twice changes nothing the second time).
// (To 'restoring' instead when a restore into it waits.)
absl::StatusOr<bool> MarkAvailable(pg::Tx& tx, const std::string& id, const std::string& host,
                                   int port, const std::string& provider_ref);
absl::StatusOr<bool> MarkFailed(pg::Tx& tx, const std::string& id, const std::string& reason);
// From any state but DELETING and DELETED.
absl::StatusOr<bool> MarkDeleting(pg::Tx& tx, const std::string& id);
absl::StatusOr<bool> MarkDeleted(pg::Tx& tx, const std::string& id);
// Rotation (DESIGN point 25; rotation.cc). available -> rotating, the
// active role becoming the retiring one (unless one still retires from an
// unfinished rotation).
absl::StatusOr<bool> BeginRotation(pg::Tx& tx, const std::string& id);
// Replaces the sealed password of login role "a" or "b".
absl::Status SetPassword(pg::Tx& tx, const std::string& id, absl::string_view role,
                         const crypto::Sealed& sealed);
// While rotating: links use `role` from now on.
absl::StatusOr<bool> SwitchRole(pg::Tx& tx, const std::string& id, absl::string_view role);
// rotating -> available. `finished`: the retiring role is retired and
// last_rotated_at is now; otherwise it stays enabled and `reason` says why.
absl::StatusOr<bool> EndRotation(pg::Tx& tx, const std::string& id, bool finished,
                                 const std::string& reason);
// Available databases whose rotation_days have passed since their last
// rotation (or creation).
absl::StatusOr<std::vector<std::string>> DueRotations(pg::Tx& tx, int limit);
// Cancels the jobs with `unique_key` that have not started; returns how
// many are running.
absl::StatusOr<int64_t> CancelJobs(pg::Tx& tx, const std::string& unique_key);
absl::StatusOr<int64_t> CountLinks(pg::Tx& tx, const std::string& database_id);
// The plain text of a sealed password of the row ("admin", "a" or "b").
absl::StatusOr<std::string> OpenPassword(const crypto::MasterKeys& keys, const DatabaseRow& row,
                                         absl::string_view role);

// Links (the database_links table; DESIGN point 3).
// Records `link` unless the service is not one of link.project_id (NotFound)
// or a link of the same database or env prefix exists (AlreadyExists).
absl::Status InsertLink(pg::Tx& tx, const v1::DatabaseLink& link);
// The link of the database to the service; NotFound without one.
absl::StatusOr<v1::DatabaseLink> GetLink(pg::Tx& tx, const std::string& database_id,
                                         const std::string& service_id);
// False when there was no such link.
absl::StatusOr<bool> DeleteLink(pg::Tx& tx, const std::string& database_id,
                                const std::string& service_id);
// A page of the links of a database or of a service (the other id ""),
// oldest first, after the cursor `after` (a link id; "" = from the start).
absl::StatusOr<v1::ListLinksResponse> ListLinks(pg::Tx& tx, const std::string& database_id,
                                                const std::string& service_id,
                                                const std::string& after, int page_size);

// Backups (the backups table; backup_store.cc).
struct NewBackup {
  std::string id, database_id;
  v1::BackupKind kind = v1::BACKUP_KIND_MANUAL;
};
absl::Status InsertBackup(pg::Tx& tx, const NewBackup& b);
// NOT_FOUND for an unknown id.
absl::StatusOr<v1::Backup> GetBackup(pg::Tx& tx, const std::string& id);
// Newest first, after the cursor `after` (a backup id; "" = from the start).
absl::StatusOr<v1::ListBackupsResponse> ListBackups(pg::Tx& tx, const std::string& database_id,
                                                    const std::string& after, int page_size);
// pending (or running: a run after a crash) -> running; false when final.
absl::StatusOr<bool> MarkBackupRunning(pg::Tx& tx, const std::string& id);
struct BackupResult {
  std::string object_key;
  int64_t size_bytes = 0;
  std::string sha256, verification;
};
// running -> succeeded (verified now); the database's last_backup_at too.
absl::StatusOr<bool> MarkBackupSucceeded(pg::Tx& tx, const std::string& id,
                                         const BackupResult& result);
absl::StatusOr<bool> MarkBackupFailed(pg::Tx& tx, const std::string& id, const std::string& reason);
// Scheduled backups (schedule.cc): databases whose next backup is due, or
// that have no time for it yet (`first`), locked for this transaction.
struct DueBackup {
  std::string database_id, schedule;
  bool first = false;
};
absl::StatusOr<std::vector<DueBackup>> DueForBackup(pg::Tx& tx, int limit);
absl::Status SetNextBackup(pg::Tx& tx, const std::string& id, absl::Time at);
// Each served database with a backup schedule, and when its newest verified
// backup was made (when the database was, if it has none yet).
struct BackupFreshness {
  std::string database_id;
  absl::Time newest;
};
absl::StatusOr<std::vector<BackupFreshness>> NewestVerifiedBackups(pg::Tx& tx);
// A database's backups of `kind` that ended, newest first.
struct EndedBackup {
  std::string id;
  bool succeeded = false;
  absl::Time created_at;
};
absl::StatusOr<std::vector<EndedBackup>> EndedBackups(pg::Tx& tx, const std::string& database_id,
                                                      v1::BackupKind kind);
// The row only: its object is removed first.
absl::Status DeleteBackup(pg::Tx& tx, const std::string& id);
// deleting -> available, with `reason` as failure_reason: its final backup
// failed, so nothing was removed.
absl::StatusOr<bool> StopDeleting(pg::Tx& tx, const std::string& id, const std::string& reason);
// available -> restoring, and back.
absl::StatusOr<bool> MarkRestoring(pg::Tx& tx, const std::string& id);
absl::StatusOr<bool> MarkRestored(pg::Tx& tx, const std::string& id);

}  // namespace c2d::dbprov
