#include "libs/pg/migrate.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/crypto/hash.h"

namespace c2d::pg {
namespace {

// "c2d_migr" as a 64-bit advisory lock key; used only by the migration runner.
constexpr int64_t kMigrationLockKey = 0x6332645f6d696772;

constexpr Statement kCreateTable{"migrate_create_table", R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version     integer     PRIMARY KEY,
  name        text        NOT NULL,
  checksum    text        NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now(),
  duration_ms integer     NOT NULL
))sql"};
constexpr Statement kApplied{
    "migrate_applied", "SELECT version, name, checksum FROM schema_migrations ORDER BY version"};
constexpr Statement kRecord{"migrate_record",
                            "INSERT INTO schema_migrations (version, name, checksum, duration_ms) "
                            "VALUES ($1, $2, $3, $4)"};
constexpr Statement kVersion{"migrate_version",
                             "SELECT coalesce(max(version), 0) FROM schema_migrations"};
constexpr Statement kAppliedDetail{"migrate_applied_detail", R"sql(
SELECT version, name, checksum, (extract(epoch FROM applied_at) * 1000000)::bigint, duration_ms
FROM schema_migrations ORDER BY version)sql"};
// An advisory lock on a bigint key shows in pg_locks as its high and low
// halves (classid, objid) with objsubid 1.
constexpr Statement kLockHeld{"migrate_lock_held", R"sql(
SELECT EXISTS (SELECT 1 FROM pg_locks
               WHERE locktype = 'advisory' AND granted AND objsubid = 1
                 AND classid::bigint = ($1::bigint >> 32) AND objid::bigint = ($1::bigint & 4294967295)
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())))sql"};
constexpr Statement kTableExists{"migrate_table_exists",
                                 "SELECT to_regclass('schema_migrations') IS NOT NULL"};

struct Applied {
  std::string name;
  std::string checksum;
};

// Runs fn(work) in one transaction on `conn`, mapping exceptions.
template <typename F>
absl::Status InTx(Connection& conn, absl::string_view what, F&& fn) {
  try {
    pqxx::work work(conn.raw());
    Tx tx(work, conn);
    fn(tx);
    work.commit();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return ToStatus(e, what);
  }
}

absl::Status Lock(Connection& conn, std::chrono::milliseconds timeout) {
  const absl::Time deadline = absl::Now() + absl::FromChrono(timeout);
  bool first = true;
  while (true) {
    try {
      pqxx::nontransaction nt(conn.raw());
      if (nt.exec_params1("SELECT pg_try_advisory_lock($1)", kMigrationLockKey)[0].as<bool>()) {
        return absl::OkStatus();
      }
    } catch (const std::exception& e) {
      return ToStatus(e, "take the migration lock");
    }
    if (first) log::Info("waiting for another migration runner to finish");
    first = false;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "another process held the migration lock for more than ", timeout.count(), "ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// Releases the lock at once: the session's end would release it too, but the
// server notices a closed connection only a moment later, and a status read
// right after Migrate returns must not see a runner that has finished.
void Unlock(Connection& conn) {
  try {
    pqxx::nontransaction nt(conn.raw());
    nt.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
  } catch (const std::exception& e) {
    log::Warn("could not release the migration lock; the session's end will",
              {{"error", e.what()}});
  }
}

// Applies what is pending; the caller holds the migration lock.
absl::StatusOr<MigrateResult> ApplyLocked(Connection& conn,
                                          const std::vector<Migration>& migrations) {
  std::map<int, Applied> applied;
  absl::Status s = InTx(conn, "read applied migrations", [&](Tx& tx) {
    tx.Exec(kCreateTable);
    for (const auto& row : tx.Exec(kApplied)) {
      applied[row[0].as<int>()] = Applied{row[1].as<std::string>(), row[2].as<std::string>()};
    }
  });
  if (!s.ok()) return s;

  for (const Migration& m : migrations) {
    auto it = applied.find(m.version);
    if (it == applied.end()) continue;
    if (it->second.checksum != m.checksum) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migration ", m.name, " was changed after it was applied (database has sha256 ",
          it->second.checksum.substr(0, 12), "…, file has ", m.checksum.substr(0, 12),
          "…): restore the file and put the change in a new migration"));
    }
  }

  MigrateResult result;
  for (const Migration& m : migrations) {
    if (applied.contains(m.version)) continue;
    const absl::Time start = absl::Now();
    s = InTx(conn, absl::StrCat("apply migration ", m.name), [&](Tx& tx) {
      tx.work().exec(m.sql);
      int64_t ms = absl::ToInt64Milliseconds(absl::Now() - start);
      tx.Exec(kRecord, m.version, m.name, m.checksum, ms);
    });
    if (!s.ok()) return s;
    log::Info("migration applied",
              {{"migration", m.name}, {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
    result.applied.push_back(m.name);
    applied[m.version] = Applied{m.name, m.checksum};
  }
  result.version = applied.empty() ? 0 : applied.rbegin()->first;
  return result;
}

}  // namespace

absl::StatusOr<Migration> MakeMigration(std::string file_name, std::string sql) {
  size_t underscore = file_name.find('_');
  int version = 0;
  if (underscore != 4 || !absl::SimpleAtoi(file_name.substr(0, 4), &version) || version <= 0 ||
      file_name.size() <= 9 || file_name.substr(file_name.size() - 4) != ".sql") {
    return absl::InvalidArgumentError(absl::StrCat(
        "migration file \"", file_name, "\" is not named NNNN_<what>.sql (e.g. 0002_domains.sql)"));
  }
  Migration m;
  m.version = version;
  m.name = std::move(file_name);
  m.checksum = crypto::Sha256Hex(sql);
  m.sql = std::move(sql);
  return m;
}

absl::StatusOr<std::vector<Migration>> LoadMigrationsDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<Migration> out;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat("cannot read migrations from ", dir, ": ", ec.message()));
  }
  for (const auto& entry : it) {
    if (!entry.is_regular_file() || entry.path().extension() != ".sql") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return absl::InternalError(absl::StrCat("cannot read ", entry.path().string()));
    auto m = MakeMigration(entry.path().filename().string(), text.str());
    if (!m.ok()) return m.status();
    out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i].version == out[i - 1].version) {
      return absl::InvalidArgumentError(absl::StrCat(
          "migrations ", out[i - 1].name, " and ", out[i].name, " share version ", out[i].version));
    }
  }
  return out;
}

absl::StatusOr<MigrateResult> Migrate(const ConnectOptions& options,
                                      const std::vector<Migration>& migrations,
                                      std::chrono::milliseconds lock_timeout) {
  // A session of its own: the advisory lock belongs to the session, and DDL
  // may run longer than the pool's statement timeout.
  ConnectOptions session = options;
  session.statement_timeout = std::chrono::milliseconds(0);
  auto conn_or = Connect(session);
  if (!conn_or.ok()) return conn_or.status();
  Connection& conn = **conn_or;
  if (auto s = Lock(conn, lock_timeout); !s.ok()) return s;
  auto result = ApplyLocked(conn, migrations);
  Unlock(conn);
  return result;
}

absl::StatusOr<int> SchemaVersion(Pool& pool) {
  return pool.Transact("read schema version", [](Tx& tx) -> absl::StatusOr<int> {
    if (!tx.Exec(kTableExists)[0][0].as<bool>()) return 0;
    return tx.Exec(kVersion)[0][0].as<int>();
  });
}

absl::StatusOr<MigrationStatus> GetMigrationStatus(Pool& pool,
                                                   const std::vector<Migration>& migrations) {
  std::map<int, const Migration*> known;
  for (const Migration& m : migrations) known[m.version] = &m;
  MigrationStatus out;
  out.latest = migrations.empty() ? 0 : migrations.back().version;
  absl::Status s = pool.Transact("read migration status", [&](Tx& tx) -> absl::Status {
    out.running = tx.Exec(kLockHeld, kMigrationLockKey)[0][0].as<bool>();
    if (!tx.Exec(kTableExists)[0][0].as<bool>()) return absl::OkStatus();
    for (const auto& r : tx.Exec(kAppliedDetail)) {
      MigrationStatus::Applied a;
      a.version = r[0].as<int>();
      a.name = r[1].as<std::string>();
      a.applied_at = absl::FromUnixMicros(r[3].as<int64_t>());
      a.duration_ms = r[4].as<int64_t>();
      auto it = known.find(a.version);
      a.unknown = it == known.end();
      a.changed = !a.unknown && it->second->checksum != r[2].as<std::string>();
      out.version = std::max(out.version, a.version);
      out.applied.push_back(std::move(a));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::set<int> done;
  for (const auto& a : out.applied) done.insert(a.version);
  for (const Migration& m : migrations) {
    if (!done.contains(m.version)) out.pending.push_back(m.name);
  }
  return out;
}

absl::Status RequireSchema(Pool& pool, int needed) {
  auto version = SchemaVersion(pool);
  if (!version.ok()) return version.status();
  if (*version < needed) {
    return absl::FailedPreconditionError(absl::StrCat("database schema is at version ", *version,
                                                      " but this build needs ", needed,
                                                      ": run c2d-migrate first"));
  }
  return absl::OkStatus();
}

}  // namespace c2d::pg
