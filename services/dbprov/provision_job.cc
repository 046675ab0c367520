#include "services/dbprov/provision_job.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/rpc/proto_json.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/dbprov/database_service.h"

namespace c2d::dbprov {
namespace {

constexpr std::chrono::seconds kStopGrace{10};

// Runs `sql` with `params` on the server, as one statement of its own.
template <typename... Args>
pqxx::result Run(pqxx::nontransaction& w, const std::string& sql, Args&&... params) {
  return w.exec_params(sql, std::forward<Args>(params)...);
}

bool Exists(pqxx::nontransaction& w, const char* catalog_query, const std::string& name) {
  return !Run(w, catalog_query, name).empty();
}

// A login role of the database: made once, then its password, limit and
// whether it may log in brought to what the row says.
void EnsureLoginRole(pqxx::nontransaction& w, const std::string& role, const std::string& owner,
                     const std::string& password, bool login, int limit) {
  const std::string q = w.quote_name(role);
  if (!Exists(w, "SELECT 1 FROM pg_roles WHERE rolname = $1", role)) {
    w.exec0(absl::StrCat("CREATE ROLE ", q));
  }
  w.exec0(absl::StrCat("ALTER ROLE ", q, login ? " LOGIN" : " NOLOGIN", " PASSWORD ",
                       w.quote(password), " CONNECTION LIMIT ", limit));
  // A role that may not log in keeps no session either (a retired one's
  // clients are gone by then: their services were redeployed).
  if (!login) {
    Run(w, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role);
  }
  w.exec0(absl::StrCat("GRANT ", w.quote_name(owner), " TO ", q));
  // Sessions act as the owner group, so what either role makes, both own.
  w.exec0(absl::StrCat("ALTER ROLE ", q, " SET role = ", w.quote(owner)));
}

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
  spec.env = {{"C2D_PG_PASSWORD", admin},
              {"C2D_PG_MAX_CONNECTIONS", std::to_string(plan.max_connections)},
              {"C2D_PG_SHARED_BUFFERS", plan.shared_buffers}};
  spec.port = engine.port;
  spec.memory_bytes = plan.memory_bytes;
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

absl::Status Servers::WaitReady(const std::string& address, const std::string& admin,
                                const jobs::JobContext* ctx) {
  const absl::Time deadline = absl::Now() + absl::FromChrono(config_.ready_timeout);
  std::string last = "no attempt";
  while (absl::Now() < deadline) {
    if (ctx != nullptr && ctx->cancelled()) return absl::CancelledError("job cancelled");
    try {
      pqxx::connection c(AdminUrl(address, admin));
      pqxx::nontransaction w(c);
      w.exec1("SELECT 1");
      return absl::OkStatus();
    } catch (const std::exception& e) {
      last = e.what();
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("the database server did not accept connections within ",
                   absl::FormatDuration(absl::FromChrono(config_.ready_timeout)), ": ", last));
}

absl::Status Servers::EnsureRoles(const std::string& address, const DatabaseRow& row,
                                  const std::string& admin) {
  const v1::Database& d = row.db;
  C2D_ASSIGN_OR_RETURN(Plan plan, FindPlan(d.plan()));
  C2D_ASSIGN_OR_RETURN(std::string a, OpenPassword(*config_.master_keys, row, "a"));
  C2D_ASSIGN_OR_RETURN(std::string b, OpenPassword(*config_.master_keys, row, "b"));
  try {
    pqxx::connection c(AdminUrl(address, admin));
    pqxx::nontransaction w(c);
    const std::string base = RoleBase(d.name());
    const std::string owner = base + "_owner";
    if (!Exists(w, "SELECT 1 FROM pg_roles WHERE rolname = $1", owner)) {
      w.exec0(absl::StrCat("CREATE ROLE ", w.quote_name(owner), " NOLOGIN"));
    }
    const int limit = RoleConnectionLimit(plan);
    EnsureLoginRole(w, base + "_a", owner, a, MayLogIn(d, "a"), limit);
    EnsureLoginRole(w, base + "_b", owner, b, MayLogIn(d, "b"), limit);
    if (!Exists(w, "SELECT 1 FROM pg_database WHERE datname = $1", d.name())) {
      w.exec0(
          absl::StrCat("CREATE DATABASE ", w.quote_name(d.name()), " OWNER ", w.quote_name(owner)));
    }
    w.exec0(absl::StrCat("REVOKE ALL ON DATABASE ", w.quote_name(d.name()), " FROM PUBLIC"));
    w.exec0(absl::StrCat("GRANT CONNECT, TEMPORARY ON DATABASE ", w.quote_name(d.name()), " TO ",
                         w.quote_name(owner)));
  } catch (const std::exception& e) {
    // The server's message may quote the statement (LINE 1: …), passwords
    // included; it becomes the database's failure_reason.
    return absl::UnavailableError(
        absl::StrCat("cannot set up the database's roles: ",
                     absl::StrReplaceAll(e.what(), {{a, "***"}, {b, "***"}, {admin, "***"}})));
  }
  return absl::OkStatus();
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
  if (absl::Status s = WaitReady(server->address, *admin, &ctx); !s.ok()) {
    return FailIfLast(ctx, id, s);
  }
  if (absl::Status s = EnsureRoles(server->address, *row, *admin); !s.ok()) {
    return FailIfLast(ctx, id, s);
  }
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
  auto marked = pool_.Transact("database deleted", [&](pg::Tx& tx) { return MarkDeleted(tx, id); });
  if (!marked.ok()) return marked.status();
  log::Info("database deleted", {{"database_id", id}});
  return absl::OkStatus();
}

}  // namespace c2d::dbprov
