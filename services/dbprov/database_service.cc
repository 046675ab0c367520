#include "services/dbprov/database_service.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/common/cron.h"
#include "libs/common/ids.h"
#include "libs/common/status.h"
#include "libs/jobs/queue.h"
#include "libs/pg/errors.h"
#include "libs/rpc/proto_json.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/dbprov/backup_job.h"
#include "services/dbprov/store.h"

namespace c2d::dbprov {
namespace {

absl::Status ValidateSchedule(v1::CreateDatabaseRequest& r) {
  if (r.has_backup_schedule() && !r.backup_schedule().empty()) {
    auto schedule = cron::Schedule::Parse(r.backup_schedule());
    if (!schedule.ok()) return rpc::InvalidField("backup_schedule", schedule.status().message());
    if (schedule->Next(absl::Now()) == absl::InfiniteFuture()) {
      return rpc::InvalidField("backup_schedule", "names no day that exists (e.g. 30 February)");
    }
    // Stored with single spaces between its fields.
    r.set_backup_schedule(absl::StrJoin(
        std::vector<std::string>(absl::StrSplit(r.backup_schedule(), ' ', absl::SkipEmpty())),
        " "));
  }
  if (r.has_retention_daily() && (r.retention_daily() < 0 || r.retention_daily() > 366))
    return rpc::InvalidField("retention_daily", "must be 0-366");
  if (r.has_retention_weekly() && (r.retention_weekly() < 0 || r.retention_weekly() > 520))
    return rpc::InvalidField("retention_weekly", "must be 0-520");
  if (r.rotation_days() < 0 || r.rotation_days() > 3650)
    return rpc::InvalidField("rotation_days", "must be 0 (on request only) or 1-3650");
  return absl::OkStatus();
}

}  // namespace

std::string NewPassword() { return absl::WebSafeBase64Escape(crypto::RandomBytes(24)); }

absl::Status EnqueueJob(pg::Tx& tx, const char* kind, const google::protobuf::Message& payload,
                        const std::string& key, int max_attempts) {
  C2D_ASSIGN_OR_RETURN(std::string json, rpc::ToJson(payload));
  auto job = jobs::Enqueue(tx, {.queue = "dbprov",
                                .kind = kind,
                                .payload = json,
                                .max_attempts = max_attempts,
                                .unique_key = key});
  return job.status();
}

std::string ProvisionJobKey(const std::string& id) { return absl::StrCat("provision_db:", id); }
std::string DeleteJobKey(const std::string& id) { return absl::StrCat("delete_db:", id); }

absl::Status EnqueueDelete(pg::Tx& tx, const std::string& database_id) {
  v1::DeleteDbJob job;
  job.set_database_id(database_id);
  return EnqueueJob(tx, "delete_db", job, DeleteJobKey(database_id));
}

absl::Status ValidateCreate(v1::CreateDatabaseRequest& r) {
  if (!ids::Valid(r.project_id(), "prj"))
    return rpc::InvalidField("project_id", "is not a project id");
  if (!rpc::ValidName(r.name())) return rpc::InvalidField("name", rpc::kNameRule);
  auto engine = FindEngine(r.engine());
  if (!engine.ok()) return rpc::InvalidField("engine", engine.status().message());
  if (r.version().empty()) r.set_version(engine->version);
  if (r.version() != engine->version) {
    return rpc::InvalidField("version", absl::StrCat("must be ", engine->version, " for ",
                                                     engine->name, " (the version offered)"));
  }
  if (r.plan().empty()) r.set_plan("small");
  if (auto plan = FindPlan(r.plan()); !plan.ok()) {
    return rpc::InvalidField("plan", plan.status().message());
  }
  C2D_RETURN_IF_ERROR(ValidateSchedule(r));
  if (!r.has_backup_schedule()) r.set_backup_schedule("0 3 * * *");
  if (!r.has_retention_daily()) r.set_retention_daily(7);
  if (!r.has_retention_weekly()) r.set_retention_weekly(4);
  return absl::OkStatus();
}

absl::Status NameTaken(const std::string& name) {
  return absl::AlreadyExistsError(absl::StrCat("the project already has a database named ", name));
}

absl::StatusOr<DatabaseRow> DatabaseServiceImpl::NewDatabase(const v1::CreateDatabaseRequest& r) {
  DatabaseRow row;
  v1::Database& d = row.db;
  d.set_id(ids::New("db"));
  d.set_project_id(r.project_id());
  d.set_name(r.name());
  d.set_engine(r.engine());
  d.set_version(r.version());
  d.set_plan(r.plan());
  d.set_backup_schedule(r.backup_schedule());
  d.set_retention_daily(r.retention_daily());
  d.set_retention_weekly(r.retention_weekly());
  d.set_rotation_days(r.rotation_days());
  const crypto::MasterKeys& keys = *config_.master_keys;
  for (auto [sealed, role] : {std::pair{&row.admin_password, "admin"},
                              std::pair{&row.password_a, "a"}, std::pair{&row.password_b, "b"}}) {
    C2D_ASSIGN_OR_RETURN(*sealed, keys.Seal(NewPassword(), PasswordAad(d.id(), role)));
  }
  return row;
}

absl::StatusOr<v1::Database> DatabaseServiceImpl::InsertNew(pg::Tx& tx, const DatabaseRow& row) {
  const v1::Database& d = row.db;
  C2D_RETURN_IF_ERROR(InsertDatabase(tx, row));
  v1::ProvisionDbJob job;
  job.set_database_id(d.id());
  C2D_RETURN_IF_ERROR(EnqueueJob(tx, "provision_db", job, ProvisionJobKey(d.id())));
  C2D_ASSIGN_OR_RETURN(DatabaseRow stored, dbprov::GetDatabase(tx, d.id()));
  return stored.db;
}

grpc::Status DatabaseServiceImpl::CreateDatabase(grpc::ServerContext*,
                                                 const v1::CreateDatabaseRequest* request,
                                                 v1::Database* response) {
  v1::CreateDatabaseRequest r = *request;
  if (absl::Status s = ValidateCreate(r); !s.ok()) return rpc::ToGrpc(s);
  auto row = NewDatabase(r);
  if (!row.ok()) return rpc::ToGrpc(row.status());
  auto created = pool_.Transact("create database", [&](pg::Tx& tx) { return InsertNew(tx, *row); });
  if (absl::IsAlreadyExists(created.status())) return rpc::ToGrpc(NameTaken(r.name()));
  if (pg::IsForeignKeyViolation(created.status())) {
    return rpc::ToGrpc(
        absl::NotFoundError(absl::StrCat("project ", r.project_id(), " does not exist")));
  }
  if (!created.ok()) return rpc::ToGrpc(created.status());
  *response = std::move(*created);
  return grpc::Status::OK;
}

grpc::Status DatabaseServiceImpl::GetDatabase(grpc::ServerContext*,
                                              const v1::GetDatabaseRequest* request,
                                              v1::Database* response) {
  if (!ids::Valid(request->id(), "db"))
    return rpc::ToGrpc(rpc::InvalidField("id", "is not a database id"));
  auto row = pool_.Read("get database",
                        [&](pg::Tx& tx) { return dbprov::GetDatabase(tx, request->id()); });
  if (!row.ok()) return rpc::ToGrpc(row.status());
  *response = std::move(row->db);
  return grpc::Status::OK;
}

grpc::Status DatabaseServiceImpl::ListDatabases(grpc::ServerContext*,
                                                const v1::ListDatabasesRequest* request,
                                                v1::ListDatabasesResponse* response) {
  if (!ids::Valid(request->project_id(), "prj"))
    return rpc::ToGrpc(rpc::InvalidField("project_id", "is not a project id"));
  auto size = rpc::PageSize(request->page());
  if (!size.ok()) return rpc::ToGrpc(size.status());
  const std::string& token = request->page().page_token();
  if (!token.empty() && !ids::Valid(token, "db")) {
    return rpc::ToGrpc(rpc::InvalidField("page.page_token", "is not a token from a previous page"));
  }
  auto page = pool_.Read("list databases", [&](pg::Tx& tx) {
    return dbprov::ListDatabases(tx, request->project_id(), token, *size);
  });
  if (!page.ok()) return rpc::ToGrpc(page.status());
  *response = std::move(*page);
  return grpc::Status::OK;
}

grpc::Status DatabaseServiceImpl::DeleteDatabase(grpc::ServerContext*,
                                                 const v1::DeleteDatabaseRequest* request,
                                                 v1::Database* response) {
  const std::string& id = request->id();
  if (!ids::Valid(id, "db")) return rpc::ToGrpc(rpc::InvalidField("id", "is not a database id"));
  auto deleted = pool_.Transact("delete database", [&](pg::Tx& tx) -> absl::StatusOr<v1::Database> {
    C2D_ASSIGN_OR_RETURN(DatabaseRow row, dbprov::GetDatabase(tx, id));
    if (row.db.state() == v1::DATABASE_STATE_DELETED) {
      return absl::NotFoundError(absl::StrCat("database ", id, " does not exist"));
    }
    C2D_ASSIGN_OR_RETURN(int64_t links, CountLinks(tx, id));
    if (links > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("database ", row.db.name(), " is linked to ", links,
                       links == 1 ? " service" : " services", "; unlink it first"));
    }
    // Only a server that serves has data to back up.
    const bool backup_first =
        !request->skip_final_backup() && (row.db.state() == v1::DATABASE_STATE_AVAILABLE ||
                                          row.db.state() == v1::DATABASE_STATE_ROTATING);
    C2D_ASSIGN_OR_RETURN(bool changed, MarkDeleting(tx, id));
    std::string final_backup;
    if (changed && backup_first) {
      // The backup job enqueues delete_db once the backup is verified.
      final_backup = ids::New("bak");
      C2D_RETURN_IF_ERROR(InsertBackup(tx, {final_backup, id, v1::BACKUP_KIND_FINAL}));
      v1::BackupDbJob job;
      job.set_backup_id(final_backup);
      C2D_RETURN_IF_ERROR(EnqueueJob(tx, "backup_db", job, BackupJobKey(final_backup), 3));
    } else if (changed) {
      C2D_RETURN_IF_ERROR(EnqueueDelete(tx, id));
    }
    C2D_ASSIGN_OR_RETURN(DatabaseRow now, dbprov::GetDatabase(tx, id));
    now.db.set_final_backup_id(final_backup);
    return now.db;
  });
  if (!deleted.ok()) return rpc::ToGrpc(deleted.status());
  *response = std::move(*deleted);
  return grpc::Status::OK;
}

}  // namespace c2d::dbprov
