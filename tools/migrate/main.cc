// c2d-migrate: applies the schema migrations compiled into this build (or
// those of --dir) to C2D_DATABASE_URL, under the migration lock.
//
//   c2d-migrate            apply what is missing, print what was applied
//   c2d-migrate --status   print the database's and this build's versions
//   c2d-migrate --dir D    use the NNNN_*.sql files of D instead

#include <cstdio>
#include <cstring>
#include <string>

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
    auto version = pg::SchemaVersion(pool);
    if (!version.ok()) {
      std::fprintf(stderr, "c2d-migrate: %s\n", version.status().ToString().c_str());
      return 1;
    }
    std::printf("database schema version %d; this build's latest %d%s\n", *version, latest,
                *version < latest ? " (run c2d-migrate)" : "");
    return 0;
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
