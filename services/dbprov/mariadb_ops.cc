// MariaDB 10.11: Connector/C for the users and counts, the host's
// mariadb-dump and mariadb (mariadb-client) for dumps. Login roles are
// users '<base>_a'@'%' and '<base>_b'@'%' with every privilege on the
// database (MariaDB objects have no owner, so both reach all of it).

#include <mysql.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "libs/common/status.h"
#include "services/dbprov/engine_ops.h"
#include "services/dbprov/provision_job.h"

namespace c2d::dbprov {
namespace {

constexpr unsigned kConnectSeconds = 5;
constexpr unsigned kCallSeconds = 60;

struct Close {
  void operator()(MYSQL* m) const { mysql_close(m); }
};
struct FreeResult {
  void operator()(MYSQL_RES* r) const { mysql_free_result(r); }
};

std::string Host(const std::string& address) { return address.substr(0, address.rfind(':')); }
std::string Port(const std::string& address) { return address.substr(address.rfind(':') + 1); }

// `name` as an identifier: `name`, backticks doubled.
std::string Ident(absl::string_view name) {
  return absl::StrCat("`", absl::StrReplaceAll(name, {{"`", "``"}}), "`");
}

// One connection as root; every call within its deadline.
class Connection {
 public:
  static absl::StatusOr<Connection> Open(const ServerLogin& s) {
    Connection c;
    c.m_.reset(mysql_init(nullptr));
    if (c.m_ == nullptr) return absl::ResourceExhaustedError("cannot allocate a MariaDB handle");
    mysql_options(c.m_.get(), MYSQL_OPT_CONNECT_TIMEOUT, &kConnectSeconds);
    mysql_options(c.m_.get(), MYSQL_OPT_READ_TIMEOUT, &kCallSeconds);
    mysql_options(c.m_.get(), MYSQL_OPT_WRITE_TIMEOUT, &kCallSeconds);
    const unsigned protocol = MYSQL_PROTOCOL_TCP;
    mysql_options(c.m_.get(), MYSQL_OPT_PROTOCOL, &protocol);
    if (mysql_real_connect(c.m_.get(), Host(s.address).c_str(), "root", s.admin.c_str(), nullptr,
                           std::stoi(Port(s.address)), nullptr, 0) == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", s.address, ": ", mysql_error(c.m_.get())));
    }
    return c;
  }

  // A string literal: 'text', escaped for the connection's character set.
  std::string Quote(absl::string_view text) {
    std::string out(text.size() * 2 + 1, '\0');
    out.resize(mysql_real_escape_string(m_.get(), out.data(), text.data(), text.size()));
    return absl::StrCat("'", out, "'");
  }

  absl::Status Exec(const std::string& sql) {
    if (mysql_real_query(m_.get(), sql.data(), sql.size()) != 0) {
      return absl::UnavailableError(mysql_error(m_.get()));
    }
    // Statements that return rows are read by Rows.
    std::unique_ptr<MYSQL_RES, FreeResult> drop(mysql_store_result(m_.get()));
    return absl::OkStatus();
  }

  // The first column of each row.
  absl::StatusOr<std::vector<std::string>> Rows(const std::string& sql) {
    if (mysql_real_query(m_.get(), sql.data(), sql.size()) != 0) {
      return absl::UnavailableError(mysql_error(m_.get()));
    }
    std::unique_ptr<MYSQL_RES, FreeResult> res(mysql_store_result(m_.get()));
    if (res == nullptr) return absl::UnavailableError(mysql_error(m_.get()));
    std::vector<std::string> out;
    while (MYSQL_ROW row = mysql_fetch_row(res.get())) out.emplace_back(row[0] ? row[0] : "");
    return out;
  }

 private:
  std::unique_ptr<MYSQL, Close> m_;
};

absl::StatusOr<TableCounts> CountTables(Connection& c, const std::string& db) {
  C2D_ASSIGN_OR_RETURN(std::vector<std::string> tables,
                       c.Rows(absl::StrCat("SELECT TABLE_NAME FROM information_schema.TABLES "
                                           "WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA = ",
                                           c.Quote(db), " ORDER BY 1")));
  TableCounts out;
  for (const std::string& t : tables) {
    C2D_ASSIGN_OR_RETURN(auto n,
                         c.Rows(absl::StrCat("SELECT COUNT(*) FROM ", Ident(db), ".", Ident(t))));
    out[absl::StrCat(db, ".", t)] = n.empty() ? 0 : std::stoll(n[0]);
  }
  return out;
}

absl::Status EnsureUser(Connection& c, const v1::Database& d, const char* role,
                        const std::string& password, int limit) {
  const std::string user = absl::StrCat(c.Quote(RoleBase(d.name()) + "_" + role), "@'%'");
  const bool login = MayLogIn(d, role);
  C2D_RETURN_IF_ERROR(c.Exec(absl::StrCat("CREATE USER IF NOT EXISTS ", user)));
  C2D_RETURN_IF_ERROR(c.Exec(absl::StrCat("ALTER USER ", user, " IDENTIFIED BY ", c.Quote(password),
                                          " WITH MAX_USER_CONNECTIONS ", limit,
                                          login ? " ACCOUNT UNLOCK" : " ACCOUNT LOCK")));
  C2D_RETURN_IF_ERROR(
      c.Exec(absl::StrCat("GRANT ALL PRIVILEGES ON ", Ident(d.name()), ".* TO ", user)));
  if (login) return absl::OkStatus();
  // A locked user keeps no session either.
  C2D_ASSIGN_OR_RETURN(std::vector<std::string> sessions,
                       c.Rows(absl::StrCat("SELECT ID FROM information_schema.PROCESSLIST WHERE "
                                           "USER = ",
                                           c.Quote(RoleBase(d.name()) + "_" + role))));
  for (const std::string& id : sessions) (void)c.Exec("KILL " + id);  // may have ended
  return absl::OkStatus();
}

std::map<std::string, std::string> ToolEnv(const ServerLogin& s) {
  return {{"MYSQL_PWD", s.admin}};
}

class Mariadb final : public EngineOps {
 public:
  std::map<std::string, std::string> ServerEnv(const std::string& admin,
                                               const Plan& plan) const override {
    std::string pool = plan.shared_buffers;  // "64MB": MariaDB says "64M"
    if (!pool.empty() && pool.back() == 'B') pool.pop_back();
    return {{"C2D_MARIADB_PASSWORD", admin},
            {"C2D_MARIADB_MAX_CONNECTIONS", std::to_string(plan.max_connections)},
            {"C2D_MARIADB_BUFFER_POOL", pool}};
  }

  absl::Status Ping(const ServerLogin& s) const override {
    C2D_ASSIGN_OR_RETURN(Connection c, Connection::Open(s));
    return c.Exec("SELECT 1");
  }

  absl::Status EnsureRoles(const ServerLogin& s, const v1::Database& d, const Logins& l,
                           const Plan& plan) const override {
    C2D_ASSIGN_OR_RETURN(Connection c, Connection::Open(s));
    absl::Status st = c.Exec(
        absl::StrCat("CREATE DATABASE IF NOT EXISTS ", Ident(d.name()), " CHARACTER SET utf8mb4"));
    const int limit = RoleConnectionLimit(plan);
    if (st.ok()) st = EnsureUser(c, d, "a", l.a, limit);
    if (st.ok()) st = EnsureUser(c, d, "b", l.b, limit);
    if (st.ok()) return st;
    return absl::UnavailableError(absl::StrCat("cannot set up the database's users: ",
                                               Scrub(std::string(st.message()), {l.a, l.b})));
  }

  absl::StatusOr<DumpCounts> Dump(const ServerLogin& s, const v1::Database& d, const Sink& write,
                                  const jobs::JobContext& ctx) const override {
    DumpCounts out;
    C2D_ASSIGN_OR_RETURN(out.before, Count(s, d));
    // One consistent read of InnoDB tables, without locking them.
    C2D_RETURN_IF_ERROR(RunTool(
        {"mariadb-dump", "--protocol=TCP", "-h", Host(s.address), "-P", Port(s.address), "-u",
         "root", "--single-transaction", "--routines", "--triggers", "--hex-blob", d.name()},
        ToolEnv(s), s.admin, &ctx, write));
    C2D_ASSIGN_OR_RETURN(out.after, Count(s, d));
    return out;
  }

  absl::Status Load(const ServerLogin& s, const v1::Database& d, const std::string& file, bool,
                    const jobs::JobContext& ctx) const override {
    {
      // Empty again; its users' grants (kept by name) hold for the new one.
      C2D_ASSIGN_OR_RETURN(Connection c, Connection::Open(s));
      C2D_RETURN_IF_ERROR(c.Exec("DROP DATABASE IF EXISTS " + Ident(d.name())));
      C2D_RETURN_IF_ERROR(
          c.Exec(absl::StrCat("CREATE DATABASE ", Ident(d.name()), " CHARACTER SET utf8mb4")));
    }
    return RunTool(
        {"sh", "-c", "exec mariadb --protocol=TCP -h \"$1\" -P \"$2\" -u root \"$3\" < \"$4\"",
         "c2d-load", Host(s.address), Port(s.address), d.name(), file},
        ToolEnv(s), s.admin, &ctx);
  }

  absl::StatusOr<TableCounts> Count(const ServerLogin& s, const v1::Database& d) const override {
    C2D_ASSIGN_OR_RETURN(Connection c, Connection::Open(s));
    return CountTables(c, d.name());
  }
};

}  // namespace

const EngineOps& MariadbOps() {
  static const Mariadb ops;
  return ops;
}

}  // namespace c2d::dbprov
