#pragma once

// Backups and restores of managed databases (DESIGN point 15), as dbprov
// jobs of named, idempotent steps:
//   backup_db:  Dump (pg_dump -Fc of one exported snapshot, streamed into
//               the object store with its size and SHA-256; the tables' row
//               counts read in that same snapshot) -> Verify (the stored
//               object read back, its SHA-256 checked, restored into a
//               scratch server, its tables and row counts compared) ->
//               succeeded. A backup that fails or does not verify is failed,
//               logged and counted (c2d_backup_failures_total).
//   restore_db: the object read back and checked (a corrupted one is
//               refused) -> the target database made again empty ->
//               pg_restore, its objects owned by the database's owner group.

#include <map>
#include <string>

#include "libs/cloud/provider.h"
#include "libs/jobs/job.h"
#include "libs/jobs/worker.h"
#include "libs/objstore/objstore.h"
#include "libs/pg/pool.h"
#include "services/dbprov/config.h"
#include "services/dbprov/engine_ops.h"
#include "services/dbprov/provision_job.h"
#include "services/dbprov/store.h"

namespace c2d::dbprov {

// Where a database's backup goes in the object store.
std::string BackupKey(const std::string& database_id, const std::string& backup_id);

class Backups {
 public:
  Backups(pg::Pool& pool, const Config& config, Servers& servers, cloud::Provider& provider,
          objstore::ObjectStore& store)
      : pool_(pool), config_(config), servers_(servers), provider_(provider), store_(store) {}

  // Registers backup_db and restore_db on a "dbprov" worker.
  void RegisterJobs(jobs::Worker& worker);
  absl::Status Backup(jobs::JobContext& ctx);
  absl::Status Restore(jobs::JobContext& ctx);

 private:
  struct Dumped {
    objstore::ObjectInfo object;
    DumpCounts counts;
  };
  absl::StatusOr<Dumped> Dump(const DatabaseRow& row, const std::string& key,
                              const jobs::JobContext& ctx);
  // A verification text when the object restores to `counts`.
  absl::StatusOr<std::string> Verify(const DatabaseRow& row, const std::string& backup_id,
                                     const v1::Backup& stored, const DumpCounts& counts,
                                     const jobs::JobContext& ctx);
  absl::Status RestoreInto(const DatabaseRow& target, const v1::Backup& backup,
                           const jobs::JobContext& ctx);
  // For an engine that loads a dump at start: its server stopped, the dump
  // put in its volume, the server started again.
  absl::Status RestartWith(const DatabaseRow& target, const std::string& admin,
                           const std::string& file, const EngineOps& ops,
                           const jobs::JobContext& ctx);
  // The published address of a database's running server.
  absl::StatusOr<std::string> ServerAddress(const std::string& database_id);
  // Fails the backup when `s` is its last try (a final backup's database
  // then stops deleting); returns `s`.
  absl::Status FailBackup(jobs::JobContext& ctx, const v1::Backup& backup, const absl::Status& s);
  // Retention, after a scheduled backup ended.
  void AfterScheduled(const v1::Backup& backup);

  pg::Pool& pool_;
  const Config& config_;
  Servers& servers_;
  cloud::Provider& provider_;
  objstore::ObjectStore& store_;
};

// The unique key of a backup's job.
std::string BackupJobKey(const std::string& backup_id);
std::string RestoreJobKey(const std::string& database_id);

}  // namespace c2d::dbprov
