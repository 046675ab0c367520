// PostgreSQL 15: libpq (libpqxx) for the roles and counts, the host's
// pg_dump and pg_restore (postgresql-client-15) for dumps.

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "libs/common/status.h"
#include "services/dbprov/engine_ops.h"
#include "services/dbprov/provision_job.h"

namespace c2d::dbprov {
namespace {

// A libpq URL of database `db` on the server as its administrator; the
// password goes alone, in `password` or PGPASSWORD.
std::string Url(const std::string& address, const std::string& db, const std::string& password) {
  return absl::StrCat("postgresql://postgres", password.empty() ? "" : ":", password, "@", address,
                      "/", db, "?connect_timeout=5&application_name=c2d-dbprov");
}

std::map<std::string, std::string> ToolEnv(const std::string& password) {
  return {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "10"}};
}

bool Exists(pqxx::nontransaction& w, const char* catalog_query, const std::string& name) {
  return !w.exec_params(catalog_query, name).empty();
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
  w.exec0(absl::StrCat("GRANT ", w.quote_name(owner), " TO ", q));
  // Sessions act as the owner group, so what either role makes, both own.
  w.exec0(absl::StrCat("ALTER ROLE ", q, " SET role = ", w.quote(owner)));
  // A role that may not log in keeps no session either (a retired one's
  // clients are gone by then: their services were redeployed).
  if (!login) {
    w.exec_params("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                  role);
  }
}

// The database, owned by the owner group and reachable by it alone.
void EnsureDatabase(pqxx::nontransaction& w, const v1::Database& d) {
  const std::string owner = RoleBase(d.name()) + "_owner";
  if (!Exists(w, "SELECT 1 FROM pg_database WHERE datname = $1", d.name())) {
    w.exec0(
        absl::StrCat("CREATE DATABASE ", w.quote_name(d.name()), " OWNER ", w.quote_name(owner)));
  }
  w.exec0(absl::StrCat("REVOKE ALL ON DATABASE ", w.quote_name(d.name()), " FROM PUBLIC"));
  w.exec0(absl::StrCat("GRANT CONNECT, TEMPORARY ON DATABASE ", w.quote_name(d.name()), " TO ",
                       w.quote_name(owner)));
}

TableCounts CountTables(pqxx::transaction_base& w) {
  TableCounts out;
  for (const auto& r : w.exec(R"sql(
      SELECT format('%I.%I', n.nspname, c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\_toast%' ORDER BY 1)sql")) {
    const std::string table = r[0].as<std::string>();
    out[table] = w.exec1("SELECT count(*) FROM " + table)[0].as<int64_t>();
  }
  return out;
}

class Postgres final : public EngineOps {
 public:
  std::map<std::string, std::string> ServerEnv(const std::string& admin,
                                               const Plan& plan) const override {
    return {{"C2D_PG_PASSWORD", admin},
            {"C2D_PG_MAX_CONNECTIONS", std::to_string(plan.max_connections)},
            {"C2D_PG_SHARED_BUFFERS", plan.shared_buffers}};
  }

  absl::Status Ping(const ServerLogin& s) const override {
    try {
      pqxx::connection c(Url(s.address, "postgres", s.admin));
      pqxx::nontransaction w(c);
      w.exec1("SELECT 1");
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return absl::UnavailableError(Scrub(e.what(), {s.admin}));
    }
  }

  absl::Status EnsureRoles(const ServerLogin& s, const v1::Database& d, const Logins& l,
                           const Plan& plan) const override {
    try {
      pqxx::connection c(Url(s.address, "postgres", s.admin));
      pqxx::nontransaction w(c);
      const std::string base = RoleBase(d.name());
      const std::string owner = base + "_owner";
      if (!Exists(w, "SELECT 1 FROM pg_roles WHERE rolname = $1", owner)) {
        w.exec0(absl::StrCat("CREATE ROLE ", w.quote_name(owner), " NOLOGIN"));
      }
      const int limit = RoleConnectionLimit(plan);
      EnsureLoginRole(w, base + "_a", owner, l.a, MayLogIn(d, "a"), limit);
      EnsureLoginRole(w, base + "_b", owner, l.b, MayLogIn(d, "b"), limit);
      EnsureDatabase(w, d);
    } catch (const std::exception& e) {
      // The server's message may quote the statement (LINE 1: …).
      return absl::UnavailableError(absl::StrCat("cannot set up the database's roles: ",
                                                 Scrub(e.what(), {l.a, l.b, s.admin})));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<DumpCounts> Dump(const ServerLogin& s, const v1::Database& d, const Sink& write,
                                  const jobs::JobContext& ctx) const override {
    DumpCounts out;
    try {
      // One snapshot for the counts and the dump: pg_dump takes it over.
      pqxx::connection c(Url(s.address, d.name(), s.admin));
      pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> w(c);
      const std::string snapshot = w.exec1("SELECT pg_export_snapshot()")[0].as<std::string>();
      out.before = CountTables(w);
      out.after = out.before;
      C2D_RETURN_IF_ERROR(RunTool({"pg_dump", "--format=custom", "--snapshot=" + snapshot,
                                   "--dbname=" + Url(s.address, d.name(), "")},
                                  ToolEnv(s.admin), s.admin, &ctx, write));
      w.commit();
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("cannot read the database: ", Scrub(e.what(), {s.admin})));
    }
    return out;
  }

  absl::Status Load(const ServerLogin& s, const v1::Database& d, const std::string& file,
                    bool scratch, const jobs::JobContext& ctx) const override {
    try {
      // Empty again, whatever a failed run left; linked apps' sessions end.
      // Then made again (by the owner group, unless on a scratch server).
      pqxx::connection c(Url(s.address, "postgres", s.admin));
      pqxx::nontransaction w(c);
      w.exec0("DROP DATABASE IF EXISTS " + w.quote_name(d.name()) + " WITH (FORCE)");
      if (scratch) {
        w.exec0("CREATE DATABASE " + w.quote_name(d.name()));
      } else {
        EnsureDatabase(w, d);
      }
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("cannot empty the database: ", Scrub(e.what(), {s.admin})));
    }
    std::vector<std::string> argv = {"pg_restore", "--no-owner", "--no-acl", "--exit-on-error"};
    // Its objects owned by the group too.
    if (!scratch) argv.push_back("--role=" + RoleBase(d.name()) + "_owner");
    argv.push_back("--dbname=" + Url(s.address, d.name(), ""));
    argv.push_back(file);
    return RunTool(std::move(argv), ToolEnv(s.admin), s.admin, &ctx);
  }

  absl::StatusOr<TableCounts> Count(const ServerLogin& s, const v1::Database& d) const override {
    try {
      pqxx::connection c(Url(s.address, d.name(), s.admin));
      pqxx::read_transaction w(c);
      return CountTables(w);
    } catch (const std::exception& e) {
      return absl::UnavailableError(Scrub(e.what(), {s.admin}));
    }
  }
};

}  // namespace

const EngineOps& PostgresOps() {
  static const Postgres ops;
  return ops;
}

}  // namespace c2d::dbprov
