#include "services/dbprov/backup_job.h"

#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "libs/common/command.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/crypto/seal.h"
#include "libs/metrics/metrics.h"
#include "libs/rpc/proto_json.h"
#include "prometheus/counter.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/dbprov/database_service.h"
#include "services/dbprov/engine_ops.h"
#include "services/dbprov/schedule.h"

namespace c2d::dbprov {
namespace {

namespace fs = std::filesystem;

constexpr char kVerifyLabel[] = "c2d.verify";
constexpr std::chrono::seconds kStopGrace{5};

prometheus::Family<prometheus::Counter>& BackupsDone() {
  static auto& family = prometheus::BuildCounter()
                            .Name("c2d_backups_total")
                            .Help("Database backups that ended, by result (succeeded, failed)")
                            .Register(metrics::Registry());
  return family;
}

std::string TempPath(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / "c2d-dbprov";
  std::error_code ec;
  fs::create_directories(dir, ec);
  return (dir / name).string();
}

}  // namespace

std::string BackupKey(const std::string& database_id, const std::string& backup_id) {
  return absl::StrCat("backups/", cloud::ResourceName(database_id), "/",
                      cloud::ResourceName(backup_id), ".dump");
}

std::string BackupJobKey(const std::string& id) { return absl::StrCat("backup_db:", id); }
std::string RestoreJobKey(const std::string& id) { return absl::StrCat("restore_db:", id); }

void Backups::RegisterJobs(jobs::Worker& worker) {
  worker.Register("backup_db", [this](jobs::JobContext& ctx) { return Backup(ctx); });
  worker.Register("restore_db", [this](jobs::JobContext& ctx) { return Restore(ctx); });
}

absl::StatusOr<std::string> Backups::ServerAddress(const std::string& database_id) {
  C2D_ASSIGN_OR_RETURN(auto servers, provider_.List({{kDatabaseLabel, database_id}}));
  if (servers.empty() || servers.front().address.empty()) {
    return absl::UnavailableError("the database's server is not running");
  }
  return servers.front().address;
}

absl::StatusOr<Backups::Dumped> Backups::Dump(const DatabaseRow& row, const std::string& key,
                                              const jobs::JobContext& ctx) {
  C2D_ASSIGN_OR_RETURN(const EngineOps* ops, OpsFor(row.db.engine()));
  C2D_ASSIGN_OR_RETURN(std::string address, ServerAddress(row.db.id()));
  C2D_ASSIGN_OR_RETURN(std::string admin, OpenPassword(*config_.master_keys, row, "admin"));
  C2D_ASSIGN_OR_RETURN(auto writer, store_.Create(key));
  Dumped out;
  C2D_ASSIGN_OR_RETURN(out.counts,
                       ops->Dump(
                           {address, admin}, row.db,
                           [&](absl::string_view bytes) { return writer->Write(bytes); }, ctx));
  C2D_ASSIGN_OR_RETURN(out.object, writer->Commit());
  return out;
}

absl::StatusOr<std::string> Backups::Verify(const DatabaseRow& row, const std::string& backup_id,
                                            const v1::Backup& stored, const DumpCounts& counts,
                                            const jobs::JobContext& ctx) {
  const std::string name = "c2d-verify-" + cloud::ResourceName(backup_id);
  auto remove_scratch = [&] {
    auto left = provider_.List({{kVerifyLabel, backup_id}});
    for (const cloud::Instance& i : left.ok() ? *left : std::vector<cloud::Instance>{}) {
      (void)provider_.Stop(i.ref, kStopGrace);
      (void)provider_.Remove(i.ref);
    }
    (void)provider_.DeleteVolume(name);
  };
  remove_scratch();  // what a crashed run left
  absl::Cleanup cleanup = remove_scratch;
  const std::string file = TempPath(cloud::ResourceName(backup_id) + ".dump");
  absl::Cleanup drop_file = [&] { fs::remove(file); };
  C2D_RETURN_IF_ERROR(objstore::FetchVerified(store_, stored.object_key(), stored.sha256(), file));
  const std::string password = absl::WebSafeBase64Escape(crypto::RandomBytes(18));
  C2D_ASSIGN_OR_RETURN(const EngineOps* ops, OpsFor(row.db.engine()));
  C2D_ASSIGN_OR_RETURN(auto spec, servers_.StackSpec(row.db, password));
  C2D_ASSIGN_OR_RETURN(EngineSpec engine, FindEngine(row.db.engine()));
  spec.name = name;
  spec.volumes = {{name, engine.data_path}};
  spec.labels = {{"c2d.project", row.db.project_id()}, {kVerifyLabel, backup_id}};
  // Beside the database, where its project's servers are (a provider such
  // as openstack has no network outside the projects').
  spec.network = cloud::ProjectNetwork(row.db.project_id());
  C2D_RETURN_IF_ERROR(provider_.EnsureNetwork(spec.network));
  // An engine that loads its dump at start finds it in its volume.
  if (!ops->LoadAtStart().empty()) {
    C2D_RETURN_IF_ERROR(provider_.WriteVolumeFile(name, ops->LoadAtStart(), file));
  }
  C2D_ASSIGN_OR_RETURN(cloud::Instance scratch, provider_.Create(spec));
  C2D_RETURN_IF_ERROR(provider_.Start(scratch.ref));
  C2D_ASSIGN_OR_RETURN(scratch, provider_.Inspect(scratch.ref));
  C2D_RETURN_IF_ERROR(servers_.WaitReady(row.db.engine(), scratch.address, password, &ctx));
  const ServerLogin login{scratch.address, password};
  if (ops->LoadAtStart().empty()) {
    C2D_RETURN_IF_ERROR(ops->Load(login, row.db, file, /*scratch=*/true, ctx));
  }
  C2D_ASSIGN_OR_RETURN(TableCounts restored, ops->Count(login, row.db));
  bool equal = false;
  std::string verdict = CompareCounts(counts, restored, &equal);
  if (!equal) return jobs::Permanent(absl::DataLossError("verification failed: " + verdict));
  return verdict;
}

absl::Status Backups::FailBackup(jobs::JobContext& ctx, const v1::Backup& backup,
                                 const absl::Status& s) {
  if (!jobs::IsPermanent(s) && ctx.job().attempts < ctx.job().max_attempts) return s;
  auto marked = pool_.Transact("backup failed", [&](pg::Tx& tx) -> absl::StatusOr<bool> {
    C2D_ASSIGN_OR_RETURN(bool failed, MarkBackupFailed(tx, backup.id(), std::string(s.message())));
    // Without its final backup a database is not deleted: it serves again.
    if (failed && backup.kind() == v1::BACKUP_KIND_FINAL) {
      C2D_RETURN_IF_ERROR(StopDeleting(tx, backup.database_id(),
                                       absl::StrCat("not deleted: its final backup ", backup.id(),
                                                    " failed: ", s.message()))
                              .status());
    }
    return failed;
  });
  if (!marked.ok()) return marked.status();
  if (*marked) {
    BackupsDone().Add({{"result", "failed"}}).Increment();
    log::Warn("backup failed", {{"backup_id", backup.id()}, {"error", s.ToString()}});
    AfterScheduled(backup);
  }
  return s;
}

void Backups::AfterScheduled(const v1::Backup& backup) {
  if (backup.kind() != v1::BACKUP_KIND_SCHEDULED) return;
  if (absl::Status s = BackupScheduler(pool_, store_).Prune(backup.database_id()); !s.ok()) {
    // The next scheduled backup prunes again.
    log::Warn("cannot prune backups",
              {{"database_id", backup.database_id()}, {"error", s.ToString()}});
  }
}

absl::Status Backups::Backup(jobs::JobContext& ctx) {
  v1::BackupDbJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.backup_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("backup_db payload names no backup"));
  }
  const std::string& id = payload.backup_id();
  auto backup = pool_.Read("get backup", [&](pg::Tx& tx) { return GetBackup(tx, id); });
  if (absl::IsNotFound(backup.status())) return jobs::Permanent(backup.status());
  if (!backup.ok()) return backup.status();
  auto running =
      pool_.Transact("backup running", [&](pg::Tx& tx) { return MarkBackupRunning(tx, id); });
  if (!running.ok()) return running.status();
  if (!*running) return absl::OkStatus();  // ended already
  auto row = pool_.Read("get database",
                        [&](pg::Tx& tx) { return GetDatabase(tx, backup->database_id()); });
  if (!row.ok()) return FailBackup(ctx, *backup, jobs::Permanent(row.status()));
  const bool final_backup = backup->kind() == v1::BACKUP_KIND_FINAL;
  if (row->db.state() != v1::DATABASE_STATE_AVAILABLE &&
      row->db.state() != v1::DATABASE_STATE_ROTATING &&
      !(final_backup && row->db.state() == v1::DATABASE_STATE_DELETING)) {
    return FailBackup(ctx, *backup, absl::UnavailableError("the database is not available"));
  }
  const std::string key = BackupKey(row->db.id(), id);
  const absl::Time start = absl::Now();
  auto dumped = Dump(*row, key, ctx);
  if (!dumped.ok()) return FailBackup(ctx, *backup, dumped.status());
  v1::Backup stored = *backup;
  stored.set_object_key(key);
  stored.set_sha256(dumped->object.sha256);
  const absl::Time dumped_at = absl::Now();
  auto verdict = Verify(*row, id, stored, dumped->counts, ctx);
  if (!verdict.ok()) return FailBackup(ctx, *backup, verdict.status());
  auto done = pool_.Transact("backup succeeded", [&](pg::Tx& tx) -> absl::StatusOr<bool> {
    C2D_ASSIGN_OR_RETURN(
        bool marked,
        MarkBackupSucceeded(tx, id, {key, dumped->object.size, dumped->object.sha256, *verdict}));
    // Deleting waited for its final backup; now it goes on.
    if (marked && final_backup) C2D_RETURN_IF_ERROR(EnqueueDelete(tx, row->db.id()));
    return marked;
  });
  if (!done.ok()) return done.status();
  AfterScheduled(*backup);
  BackupsDone().Add({{"result", "succeeded"}}).Increment();
  log::Info("backup verified", {{"backup_id", id},
                                {"bytes", dumped->object.size},
                                {"dump_s", absl::ToDoubleSeconds(dumped_at - start)},
                                {"verify_s", absl::ToDoubleSeconds(absl::Now() - dumped_at)},
                                {"verification", *verdict}});
  return absl::OkStatus();
}

absl::Status Backups::RestoreInto(const DatabaseRow& target, const v1::Backup& backup,
                                  const jobs::JobContext& ctx) {
  const std::string file = TempPath("restore-" + cloud::ResourceName(backup.id()) + ".dump");
  absl::Cleanup drop_file = [&] { fs::remove(file); };
  absl::Status fetched =
      objstore::FetchVerified(store_, backup.object_key(), backup.sha256(), file);
  if (absl::IsDataLoss(fetched) || absl::IsNotFound(fetched)) return jobs::Permanent(fetched);
  C2D_RETURN_IF_ERROR(fetched);
  C2D_ASSIGN_OR_RETURN(const EngineOps* ops, OpsFor(target.db.engine()));
  C2D_ASSIGN_OR_RETURN(std::string admin, OpenPassword(*config_.master_keys, target, "admin"));
  if (!ops->LoadAtStart().empty()) return RestartWith(target, admin, file, *ops, ctx);
  C2D_ASSIGN_OR_RETURN(std::string address, ServerAddress(target.db.id()));
  return ops->Load({address, admin}, target.db, file, /*scratch=*/false, ctx);
}

absl::Status Backups::RestartWith(const DatabaseRow& target, const std::string& admin,
                                  const std::string& file, const EngineOps& ops,
                                  const jobs::JobContext& ctx) {
  C2D_ASSIGN_OR_RETURN(auto servers, provider_.List({{kDatabaseLabel, target.db.id()}}));
  for (const cloud::Instance& server : servers) {
    C2D_RETURN_IF_ERROR(provider_.Stop(server.ref, kStopGrace));
  }
  C2D_RETURN_IF_ERROR(
      provider_.WriteVolumeFile(ServerName(target.db.id()), ops.LoadAtStart(), file));
  C2D_ASSIGN_OR_RETURN(cloud::Instance server, servers_.EnsureServer(target, admin));
  C2D_RETURN_IF_ERROR(servers_.WaitReady(target.db.engine(), server.address, admin, &ctx));
  return servers_.EnsureRoles(server.address, target, admin);
}

absl::Status Backups::Restore(jobs::JobContext& ctx) {
  v1::RestoreDbJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.backup_id().empty() ||
      payload.target_database_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("restore_db payload is incomplete"));
  }
  const std::string& target_id = payload.target_database_id();
  auto backup =
      pool_.Read("get backup", [&](pg::Tx& tx) { return GetBackup(tx, payload.backup_id()); });
  if (absl::IsNotFound(backup.status())) return jobs::Permanent(backup.status());
  if (!backup.ok()) return backup.status();
  auto target = pool_.Read("get database", [&](pg::Tx& tx) { return GetDatabase(tx, target_id); });
  if (absl::IsNotFound(target.status())) return jobs::Permanent(target.status());
  if (!target.ok()) return target.status();
  switch (target->db.state()) {
    case v1::DATABASE_STATE_PROVISIONING:  // a new database: once it is there
      return absl::UnavailableError("waiting for the new database to be provisioned");
    case v1::DATABASE_STATE_AVAILABLE: {
      auto marked =
          pool_.Transact("restoring", [&](pg::Tx& tx) { return MarkRestoring(tx, target_id); });
      if (!marked.ok()) return marked.status();
      break;
    }
    case v1::DATABASE_STATE_RESTORING:
      break;
    default:
      return jobs::Permanent(
          absl::FailedPreconditionError("the target database is gone or failed"));
  }
  absl::Status s = RestoreInto(*target, *backup, ctx);
  const bool last = jobs::IsPermanent(s) || ctx.job().attempts >= ctx.job().max_attempts;
  if (!s.ok() && !last) return s;
  auto back = pool_.Transact("restored", [&](pg::Tx& tx) { return MarkRestored(tx, target_id); });
  if (!back.ok()) return back.status();
  if (!s.ok()) {
    log::Warn("restore failed",
              {{"backup_id", backup->id()}, {"database_id", target_id}, {"error", s.ToString()}});
    return s;
  }
  log::Info("restored", {{"backup_id", backup->id()}, {"database_id", target_id}});
  return absl::OkStatus();
}

}  // namespace c2d::dbprov
