#include "services/dbprov/provision_job.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/rpc/proto_json.h"
#include "libs/rpc/status.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/dbprov/database_service.h"
#include "services/dbprov/engine_ops.h"

namespace c2d::dbprov {
namespace {

constexpr std::chrono::seconds kStopGrace{10};

constexpr pg::Statement kProjectName{"dbprov_project_name",
                                     "SELECT name FROM projects WHERE id = $1"};

}  // namespace

bool MayLogIn(const v1::Database& d, absl::string_view role) {
  return d.active_role() == role || d.retiring_role() == role ||
         d.state() == v1::DATABASE_STATE_ROTATING;
}

std::string RoleBase(const std::string& name) {
  // PostgreSQL reserves role names that start with "pg_".
  return name == "pg" ? "pgdb" : name;
}

std::string ServerName(const std::string& database_id) {
  return absl::StrCat("c2d-", cloud::ResourceName(database_id));
}

std::string Servers::AdminUrl(const std::string& address, const std::string& admin) {
  return absl::StrCat("postgresql://postgres:", admin, "@", address,
                      "/postgres?connect_timeout=2&application_name=c2d-dbprov");
}

absl::StatusOr<cloud::InstanceSpec> Servers::StackSpec(const v1::Database& d,
                                                       const std::string& admin) {
  C2D_ASSIGN_OR_RETURN(EngineSpec engine, FindEngine(d.engine()));
  C2D_ASSIGN_OR_RETURN(Plan plan, FindPlan(d.plan()));
  C2D_ASSIGN_OR_RETURN(std::string digest, registry_.ResolveDigest(engine.repository, engine.tag));
  cloud::InstanceSpec spec;
  spec.image = absl::StrCat(config_.local.registry_host, "/", engine.repository, "@", digest);
  C2D_ASSIGN_OR_RETURN(const EngineOps* ops, OpsFor(d.engine()));
  spec.env = ops->ServerEnv(admin, plan);
  spec.port = engine.port;
  spec.memory_bytes = plan.memory_bytes;
  spec.database = true;
  return spec;
}

absl::StatusOr<cloud::Instance> Servers::EnsureServer(const DatabaseRow& row,
                                                      const std::string& admin) {
  const v1::Database& d = row.db;
  C2D_ASSIGN_OR_RETURN(EngineSpec engine, FindEngine(d.engine()));
  const std::string network = cloud::ProjectNetwork(d.project_id());
  C2D_RETURN_IF_ERROR(provider_.EnsureNetwork(network));
  C2D_ASSIGN_OR_RETURN(auto found, provider_.List({{kDatabaseLabel, d.id()}}));
  if (found.empty()) {
    C2D_ASSIGN_OR_RETURN(cloud::InstanceSpec spec, StackSpec(d, admin));
    spec.name = ServerName(d.id());
    spec.volumes = {{ServerName(d.id()), engine.data_path}};
    spec.labels = {{"c2d.project", d.project_id()}, {kDatabaseLabel, d.id()}};
    spec.network = network;
    // Linked apps find the server by a name in their /etc/hosts.
    spec.stable_address = true;
    C2D_ASSIGN_OR_RETURN(cloud::Instance made, provider_.Create(spec));
    found.push_back(std::move(made));
  }
  const cloud::Instance& server = found.front();
  if (server.state != cloud::InstanceState::kRunning) {
    C2D_RETURN_IF_ERROR(provider_.Start(server.ref));
  }
  return provider_.Inspect(server.ref);
}

absl::Status Servers::WaitReady(v1::DatabaseEngine engine, const std::string& address,
                                const std::string& admin, const jobs::JobContext* ctx) {
  C2D_ASSIGN_OR_RETURN(const EngineOps* ops, OpsFor(engine));
  const absl::Time deadline = absl::Now() + absl::FromChrono(config_.ready_timeout);
  absl::Status last = absl::UnavailableError("no attempt");
  while (absl::Now() < deadline) {
    if (ctx != nullptr && ctx->cancelled()) return absl::CancelledError("job cancelled");
    last = ops->Ping({address, admin});
    if (last.ok()) return last;
    absl::SleepFor(absl::Milliseconds(250));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "the database server did not accept connections within ",
      absl::FormatDuration(absl::FromChrono(config_.ready_timeout)), ": ", last.message()));
}

absl::Status Servers::EnsureRoles(const std::string& address, const DatabaseRow& row,
                                  const std::string& admin) {
  C2D_ASSIGN_OR_RETURN(Plan plan, FindPlan(row.db.plan()));
  C2D_ASSIGN_OR_RETURN(const EngineOps* ops, OpsFor(row.db.engine()));
  C2D_ASSIGN_OR_RETURN(std::string a, OpenPassword(*config_.master_keys, row, "a"));
  C2D_ASSIGN_OR_RETURN(std::string b, OpenPassword(*config_.master_keys, row, "b"));
  absl::Status s = ops->EnsureRoles({address, admin}, row.db, {a, b}, plan);
  // It becomes the database's failure_reason: never a password in it.
  if (!s.ok()) return absl::Status(s.code(), Scrub(std::string(s.message()), {a, b, admin}));
  return s;
}

absl::Status Servers::FailIfLast(jobs::JobContext& ctx, const std::string& id,
                                 const absl::Status& s) {
  if (jobs::IsPermanent(s) || ctx.job().attempts >= ctx.job().max_attempts) {
    auto marked = pool_.Transact("database failed", [&](pg::Tx& tx) {
      return MarkFailed(tx, id, std::string(s.message()));
    });
    if (!marked.ok()) return marked.status();
  }
  return s;
}

void Servers::RegisterJobs(jobs::Worker& worker) {
  worker.Register("provision_db", [this](jobs::JobContext& ctx) { return Provision(ctx); });
  worker.Register("delete_db", [this](jobs::JobContext& ctx) { return Delete(ctx); });
}

absl::StatusOr<DatabaseRow> Servers::Load(const std::string& id) {
  auto row = pool_.Read("get database", [&](pg::Tx& tx) { return GetDatabase(tx, id); });
  // Gone: running the job again cannot help.
  if (absl::IsNotFound(row.status())) return jobs::Permanent(row.status());
  return row;
}

void Servers::UseDns(const std::shared_ptr<grpc::Channel>& dns) {
  dns_ = std::make_unique<dns::Client>(dns);
}

absl::Status Servers::PublishName(const DatabaseRow& row, const std::string& address) {
  if (dns_ == nullptr) return absl::OkStatus();
  const std::string owner = absl::StrCat("database:", row.db.id());
  if (address.empty()) {
    v1::DeleteRecordsRequest del;
    del.set_owner(owner);
    return dns_->Delete(del).status();
  }
  auto project = pool_.Read("project name", [&](pg::Tx& tx) -> absl::StatusOr<std::string> {
    pqxx::result r = tx.Exec(kProjectName, row.db.project_id());
    if (r.empty()) return absl::NotFoundError("the database's project does not exist");
    return r[0][0].as<std::string>();
  });
  if (!project.ok()) return project.status();
  v1::UpsertRecordsRequest upsert;
  v1::Record& r = *upsert.add_records();
  r.set_name(absl::StrCat(row.db.name(), ".", *project, ".internal.", config_.base_domain));
  r.set_type(v1::RECORD_TYPE_A);
  r.set_owner(owner);
  r.add_values(address);
  return dns_->Upsert(upsert).status();
}

absl::Status Servers::Provision(jobs::JobContext& ctx) {
  v1::ProvisionDbJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.database_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("provision_db payload names no database"));
  }
  const std::string& id = payload.database_id();
  auto row = Load(id);
  if (!row.ok()) return row.status();
  if (row->db.state() != v1::DATABASE_STATE_PROVISIONING) return absl::OkStatus();
  auto admin = OpenPassword(*config_.master_keys, *row, "admin");
  if (!admin.ok()) return FailIfLast(ctx, id, jobs::Permanent(admin.status()));
  auto server = EnsureServer(*row, *admin);
  if (!server.ok()) return FailIfLast(ctx, id, server.status());
  if (absl::Status s = WaitReady(row->db.engine(), server->address, *admin, &ctx); !s.ok()) {
    return FailIfLast(ctx, id, s);
  }
  if (absl::Status s = EnsureRoles(server->address, *row, *admin); !s.ok()) {
    return FailIfLast(ctx, id, s);
  }
  if (absl::Status s = PublishName(*row, server->private_address); !s.ok()) return s;
  auto engine = FindEngine(row->db.engine());
  auto marked = pool_.Transact("database available", [&](pg::Tx& tx) {
    return MarkAvailable(tx, id, config_.Host(engine->name, id), engine->port, server->ref);
  });
  if (!marked.ok()) return marked.status();
  log::Info("database available", {{"database_id", id}, {"server", server->ref}});
  return absl::OkStatus();
}

absl::Status Servers::Delete(jobs::JobContext& ctx) {
  v1::DeleteDbJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.database_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("delete_db payload names no database"));
  }
  const std::string& id = payload.database_id();
  auto row = Load(id);
  if (!row.ok()) return row.status();
  if (row->db.state() != v1::DATABASE_STATE_DELETING) return absl::OkStatus();
  // A provisioning run still going could make a server after this removed
  // it: a waiting one is cancelled, a running one waited for (by retrying;
  // it finds the database deleting and stops).
  auto running = pool_.Transact("stop provisioning",
                                [&](pg::Tx& tx) { return CancelJobs(tx, ProvisionJobKey(id)); });
  if (!running.ok()) return running.status();
  if (*running > 0) return absl::UnavailableError("the database is still being provisioned");
  C2D_ASSIGN_OR_RETURN(auto servers, provider_.List({{kDatabaseLabel, id}}));
  for (const cloud::Instance& server : servers) {
    C2D_RETURN_IF_ERROR(provider_.Stop(server.ref, kStopGrace));
    if (absl::Status s = provider_.Remove(server.ref); !s.ok() && !absl::IsNotFound(s)) return s;
  }
  C2D_RETURN_IF_ERROR(provider_.DeleteVolume(ServerName(id)));
  auto left = provider_.List({{"c2d.project", row->db.project_id()}});
  if (left.ok() && left->empty()) {
    (void)provider_.RemoveNetwork(cloud::ProjectNetwork(row->db.project_id()));
  }
  C2D_RETURN_IF_ERROR(PublishName(*row, ""));
  auto marked = pool_.Transact("database deleted", [&](pg::Tx& tx) { return MarkDeleted(tx, id); });
  if (!marked.ok()) return marked.status();
  log::Info("database deleted", {{"database_id", id}});
  return absl::OkStatus();
}

}  // namespace c2d::dbprov
