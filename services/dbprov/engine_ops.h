#pragma once

// What dbprov does with a database server, engine by engine: the server's
// environment, a liveness check, the login roles, dumps and loads, and the
// counts a restore verification compares. Each engine's client runs
// against the server's published address as its administrator, with a
// deadline on every call (PostgreSQL: libpq and pg_dump/pg_restore;
// MariaDB: Connector/C and mariadb-dump/mariadb; Redis: hiredis and
// redis-cli).

#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/jobs/job.h"
#include "proto/c2d/v1/dbprov.pb.h"
#include "services/dbprov/config.h"

namespace c2d::dbprov {

// Tables ("schema.table"; Redis: "keys") and their row counts.
using TableCounts = std::map<std::string, int64_t>;

// What the source held while it was dumped: counts read just before and
// just after the dump. PostgreSQL reads both in the dump's own snapshot, so
// they are equal and a verification is exact; for the others a restored
// count must lie between them (writes may land while the dump runs).
struct DumpCounts {
  TableCounts before, after;
};

// "3 tables, 1200 rows: as at dump time", or what differs; `equal` says
// whether the restored counts are what the dump held.
std::string CompareCounts(const DumpCounts& source, const TableCounts& restored, bool* equal);

// A running server as dbprov reaches it: its published address (host:port)
// and the administrator's password.
struct ServerLogin {
  std::string address, admin;
};

// The passwords of login roles "a" and "b".
struct Logins {
  std::string a, b;
};

using Sink = std::function<absl::Status(absl::string_view)>;

class EngineOps {
 public:
  virtual ~EngineOps() = default;
  // The server container's environment (tools/stacks/<engine>/ documents it).
  virtual std::map<std::string, std::string> ServerEnv(const std::string& admin,
                                                       const Plan& plan) const = 0;
  // OK when the server takes the administrator's logins.
  virtual absl::Status Ping(const ServerLogin& s) const = 0;
  // The database, and login roles <base>_a and <base>_b with their
  // passwords, the plan's connection limit where the engine has one, and
  // logins allowed as MayLogIn says (a role that may not log in loses its
  // sessions), made or brought up to date.
  virtual absl::Status EnsureRoles(const ServerLogin& s, const v1::Database& d, const Logins& l,
                                   const Plan& plan) const = 0;
  // A consistent dump of the database, streamed to `write`.
  virtual absl::StatusOr<DumpCounts> Dump(const ServerLogin& s, const v1::Database& d,
                                          const Sink& write, const jobs::JobContext& ctx) const = 0;
  // Empty: a dump is loaded into a running server by Load. Otherwise the
  // file name a server loads a dump from at its start, out of its volume
  // (Redis: restore.rdb).
  virtual std::string LoadAtStart() const { return ""; }
  // Loads the dump in `file` into the database of a running server,
  // emptied first. `scratch`: a bare server of the same engine for
  // verification, with no login roles.
  virtual absl::Status Load(const ServerLogin& s, const v1::Database& d, const std::string& file,
                            bool scratch, const jobs::JobContext& ctx) const = 0;
  // What the database holds now.
  virtual absl::StatusOr<TableCounts> Count(const ServerLogin& s, const v1::Database& d) const = 0;
};

// InvalidArgument for an engine c2d does not run.
absl::StatusOr<const EngineOps*> OpsFor(v1::DatabaseEngine engine);

const EngineOps& PostgresOps();
const EngineOps& RedisOps();
const EngineOps& MariadbOps();

// Runs a client tool with `env` (holding the secret `secret`, which is
// masked in errors), its stdout streamed to `on_stdout` when given; its
// output in the error when it fails.
absl::Status RunTool(std::vector<std::string> argv, std::map<std::string, std::string> env,
                     const std::string& secret, const jobs::JobContext* ctx,
                     Sink on_stdout = nullptr);

// `message` without any of `secrets` (replaced by ***).
std::string Scrub(std::string message, std::initializer_list<absl::string_view> secrets);

}  // namespace c2d::dbprov
