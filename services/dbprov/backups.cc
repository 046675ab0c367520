// DatabaseService's backup RPCs: they record and enqueue; the work is in
// backup_job.cc.

#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/status.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/dbprov/backup_job.h"
#include "services/dbprov/database_service.h"

namespace c2d::dbprov {
namespace {

// The stored object still has the SHA-256 it had when it was made.
absl::Status CheckIntact(objstore::ObjectStore& store, const v1::Backup& b) {
  absl::Status read = objstore::ReadVerified(store, b.object_key(), b.sha256(),
                                             [](absl::string_view) { return absl::OkStatus(); });
  if (absl::IsNotFound(read)) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", b.id(), " cannot be restored: its stored object is gone"));
  }
  if (absl::IsDataLoss(read)) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", b.id(), " is corrupted and cannot be restored: ", read.message()));
  }
  return read;
}

}  // namespace

grpc::Status DatabaseServiceImpl::CreateBackup(grpc::ServerContext*,
                                               const v1::CreateBackupRequest* request,
                                               v1::Backup* response) {
  const std::string& db = request->database_id();
  if (!ids::Valid(db, "db"))
    return rpc::ToGrpc(rpc::InvalidField("database_id", "is not a database id"));
  auto made = pool_.Transact("create backup", [&](pg::Tx& tx) -> absl::StatusOr<v1::Backup> {
    C2D_ASSIGN_OR_RETURN(DatabaseRow row, dbprov::GetDatabase(tx, db));
    if (row.db.state() != v1::DATABASE_STATE_AVAILABLE &&
        row.db.state() != v1::DATABASE_STATE_ROTATING) {
      return absl::FailedPreconditionError(
          absl::StrCat("database ", row.db.name(),
                       " is not available; only an available database is backed up"));
    }
    const std::string id = ids::New("bak");
    C2D_RETURN_IF_ERROR(InsertBackup(tx, {id, db, v1::BACKUP_KIND_MANUAL}));
    v1::BackupDbJob job;
    job.set_backup_id(id);
    C2D_RETURN_IF_ERROR(EnqueueJob(tx, "backup_db", job, BackupJobKey(id), 3));
    return dbprov::GetBackup(tx, id);
  });
  if (!made.ok()) return rpc::ToGrpc(made.status());
  *response = std::move(*made);
  return grpc::Status::OK;
}

grpc::Status DatabaseServiceImpl::ListBackups(grpc::ServerContext*,
                                              const v1::ListBackupsRequest* request,
                                              v1::ListBackupsResponse* response) {
  if (!ids::Valid(request->database_id(), "db"))
    return rpc::ToGrpc(rpc::InvalidField("database_id", "is not a database id"));
  auto size = rpc::PageSize(request->page());
  if (!size.ok()) return rpc::ToGrpc(size.status());
  const std::string& token = request->page().page_token();
  if (!token.empty() && !ids::Valid(token, "bak")) {
    return rpc::ToGrpc(rpc::InvalidField("page.page_token", "is not a token from a previous page"));
  }
  auto page = pool_.Read("list backups", [&](pg::Tx& tx) {
    return dbprov::ListBackups(tx, request->database_id(), token, *size);
  });
  if (!page.ok()) return rpc::ToGrpc(page.status());
  *response = std::move(*page);
  return grpc::Status::OK;
}

grpc::Status DatabaseServiceImpl::GetBackup(grpc::ServerContext*,
                                            const v1::GetBackupRequest* request,
                                            v1::Backup* response) {
  if (!ids::Valid(request->id(), "bak"))
    return rpc::ToGrpc(rpc::InvalidField("id", "is not a backup id"));
  auto b =
      pool_.Read("get backup", [&](pg::Tx& tx) { return dbprov::GetBackup(tx, request->id()); });
  if (!b.ok()) return rpc::ToGrpc(b.status());
  *response = std::move(*b);
  return grpc::Status::OK;
}

absl::StatusOr<v1::Database> DatabaseServiceImpl::StartRestore(
    const v1::Backup& backup, const v1::RestoreBackupRequest& request) {
  C2D_ASSIGN_OR_RETURN(DatabaseRow source, pool_.Read("source", [&](pg::Tx& tx) {
    return dbprov::GetDatabase(tx, backup.database_id());
  }));
  std::optional<DatabaseRow> fresh;
  if (request.has_new_database_name()) {
    v1::CreateDatabaseRequest r;
    r.set_project_id(source.db.project_id());
    r.set_name(request.new_database_name());
    r.set_engine(source.db.engine());
    r.set_version(source.db.version());
    r.set_plan(source.db.plan());
    if (absl::Status s = ValidateCreate(r); !s.ok()) {
      return rpc::InvalidField("new_database_name", s.message());
    }
    C2D_ASSIGN_OR_RETURN(fresh, NewDatabase(r));
  } else if (request.database_id() != backup.database_id()) {
    return rpc::InvalidField("database_id",
                             "must be the backup's own database (or give new_database_name)");
  }
  auto restoring = pool_.Transact("restore", [&](pg::Tx& tx) -> absl::StatusOr<v1::Database> {
    std::string target = backup.database_id();
    if (fresh) {
      C2D_ASSIGN_OR_RETURN(v1::Database made, InsertNew(tx, *fresh));
      target = made.id();
    } else {
      C2D_ASSIGN_OR_RETURN(bool marked, MarkRestoring(tx, target));
      if (!marked) {
        return absl::FailedPreconditionError(
            absl::StrCat("database ", source.db.name(), " is not available to restore into"));
      }
    }
    v1::RestoreDbJob job;
    job.set_backup_id(backup.id());
    job.set_target_database_id(target);
    C2D_RETURN_IF_ERROR(EnqueueJob(tx, "restore_db", job, RestoreJobKey(target), 20));
    C2D_ASSIGN_OR_RETURN(DatabaseRow now, dbprov::GetDatabase(tx, target));
    return now.db;
  });
  if (fresh && absl::IsAlreadyExists(restoring.status())) return NameTaken(fresh->db.name());
  return restoring;
}

grpc::Status DatabaseServiceImpl::RestoreBackup(grpc::ServerContext*,
                                                const v1::RestoreBackupRequest* request,
                                                v1::Database* response) {
  if (!ids::Valid(request->backup_id(), "bak"))
    return rpc::ToGrpc(rpc::InvalidField("backup_id", "is not a backup id"));
  auto backup = pool_.Read("get backup",
                           [&](pg::Tx& tx) { return dbprov::GetBackup(tx, request->backup_id()); });
  if (!backup.ok()) return rpc::ToGrpc(backup.status());
  if (backup->state() != v1::BACKUP_STATE_SUCCEEDED) {
    return rpc::ToGrpc(absl::FailedPreconditionError(
        absl::StrCat("backup ", backup->id(), " did not succeed, so there is nothing to restore")));
  }
  if (absl::Status s = CheckIntact(store_, *backup); !s.ok()) return rpc::ToGrpc(s);
  auto target = StartRestore(*backup, *request);
  if (!target.ok()) return rpc::ToGrpc(target.status());
  *response = std::move(*target);
  return grpc::Status::OK;
}

}  // namespace c2d::dbprov
