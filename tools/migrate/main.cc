// c2d-migrate: applies the schema migrations compiled into this build (or
// those of --dir) to C2D_DATABASE_URL, under the migration lock.
//
//   c2d-migrate            apply what is missing, print what was applied
//   c2d-migrate --status   what an operator asks before and during an upgrade:
//                          the database's version and this build's, what is
//                          pending, what the database has that this build
//                          does not know (a newer c2d migrated it), files
//                          changed since they were applied, whether a runner
//                          is at work now, and every applied migration.
//                          Exit status: 0 nothing to apply, 3 migrations
//                          pending, 4 a changed file (c2d-migrate would
//                          refuse to run), 1 the database could not be read.
//   c2d-migrate --dir D    use the NNNN_*.sql files of D instead

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "libs/common/env.h"
#include "libs/common/log.h"
#include "libs/pg/migrate.h"
#include "migrations/embedded.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: c2d-migrate [--status] [--dir DIR]\n"
               "  C2D_DATABASE_URL names the database; C2D_MIGRATE_LOCK_TIMEOUT (60s)\n"
               "  bounds the wait for another runner.\n");
  return 2;
}

std::string When(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

int PrintStatus(c2d::pg::Pool& pool, const std::vector<c2d::pg::Migration>& migrations) {
  auto st = c2d::pg::GetMigrationStatus(pool, migrations);
  if (!st.ok()) {
    std::fprintf(stderr, "c2d-migrate: %s\n", st.status().ToString().c_str());
    return 1;
  }
  std::printf("database schema version %d; this build's latest %d\n", st->version, st->latest);
  std::printf("migration running now: %s\n",
              st->running ? "yes (a c2d-migrate holds the lock)" : "no");
  std::printf("pending: %s\n",
              st->pending.empty()
                  ? "none"
                  : absl::StrCat(absl::StrJoin(st->pending, ", "), " (run c2d-migrate)").c_str());
  std::vector<std::string> unknown, changed;
  for (const auto& a : st->applied) {
    if (a.unknown) unknown.push_back(a.name);
    if (a.changed) changed.push_back(a.name);
  }
  if (!unknown.empty()) {
    std::printf(
        "ahead of this build: %s (a newer c2d applied them; this build keeps working on that "
        "schema for one release, see README \"Upgrading\")\n",
        absl::StrJoin(unknown, ", ").c_str());
  }
  if (!changed.empty()) {
    std::printf(
        "changed since applied: %s (c2d-migrate refuses to run: restore the file and put the "
        "change in a new migration)\n",
        absl::StrJoin(changed, ", ").c_str());
  }
  std::printf("applied:\n");
  for (const auto& a : st->applied) {
    std::printf("  %-40s %s  %lld ms\n", a.name.c_str(), When(a.applied_at).c_str(),
                static_cast<long long>(a.duration_ms));
  }
  if (!changed.empty()) return 4;
  return st->pending.empty() ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace c2d;
  log::Init("migrate", log::ParseLevel(env::GetString("C2D_LOG_LEVEL", "info")));
  bool status_only = false;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--status") == 0) {
      status_only = true;
    } else if (std::strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else {
      return Usage();
    }
  }
  auto pool_options = pg::PoolOptions::FromEnv("c2d-migrate");
  if (!pool_options.ok()) {
    std::fprintf(stderr, "c2d-migrate: %s\n", pool_options.status().ToString().c_str());
    return 1;
  }
  auto lock_timeout = env::GetDuration("C2D_MIGRATE_LOCK_TIMEOUT", std::chrono::seconds(60),
                                       std::chrono::milliseconds(0), std::chrono::hours(24));
  if (!lock_timeout.ok()) {
    std::fprintf(stderr, "c2d-migrate: %s\n", lock_timeout.status().ToString().c_str());
    return 1;
  }
  std::vector<pg::Migration> migrations = migrations::All();
  if (!dir.empty()) {
    auto loaded = pg::LoadMigrationsDir(dir);
    if (!loaded.ok()) {
      std::fprintf(stderr, "c2d-migrate: %s\n", loaded.status().ToString().c_str());
      return 1;
    }
    migrations = std::move(*loaded);
  }
  const int latest = migrations.empty() ? 0 : migrations.back().version;

  if (status_only) {
    pg::Pool pool(*pool_options);
    return PrintStatus(pool, migrations);
  }

  auto result = pg::Migrate(pool_options->connect, migrations, *lock_timeout);
  if (!result.ok()) {
    std::fprintf(stderr, "c2d-migrate: %s\n", result.status().ToString().c_str());
    return 1;
  }
  for (const auto& name : result->applied) std::printf("applied %s\n", name.c_str());
  std::printf("schema at version %d\n", result->version);
  return 0;
}
