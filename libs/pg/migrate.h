#pragma once

// Forward-only schema migrations: files named NNNN_<what>.sql, applied in
// version order, each in its own transaction, under a cluster-wide advisory
// lock so that processes starting together apply each file exactly once.
// Applied versions are recorded in schema_migrations with the SHA-256 of the
// file; a file changed after it was applied makes Migrate refuse to run.

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"

namespace c2d::pg {

struct Migration {
  int version = 0;   // NNNN
  std::string name;  // the file name, e.g. "0001_initial.sql"
  std::string sql;
  std::string checksum;  // sha256 hex of sql
};

// Builds a Migration from a file name of the form NNNN_<what>.sql and its text.
absl::StatusOr<Migration> MakeMigration(std::string file_name, std::string sql);

// Every NNNN_*.sql file in `dir`, sorted by version. Two files with one
// version, or a .sql file with a malformed name, are an error.
absl::StatusOr<std::vector<Migration>> LoadMigrationsDir(const std::string& dir);

struct MigrateResult {
  std::vector<std::string> applied;  // names applied by this call, in order
  int version = 0;                   // highest version present afterwards
};

// Applies the migrations not yet applied. Waits up to `lock_timeout` for
// another runner to finish.
absl::StatusOr<MigrateResult> Migrate(const ConnectOptions& options,
                                      const std::vector<Migration>& migrations,
                                      std::chrono::milliseconds lock_timeout);

// What an operator asks before and during an upgrade, read without taking
// the migration lock.
struct MigrationStatus {
  struct Applied {
    int version = 0;
    std::string name;
    absl::Time applied_at;
    int64_t duration_ms = 0;
    bool changed = false;  // this build's file of that version has another text
    bool unknown = false;  // this build has no migration of that version
  };
  std::vector<Applied> applied;      // in version order
  std::vector<std::string> pending;  // this build's migrations not applied, in order
  int version = 0;                   // the highest applied
  int latest = 0;                    // this build's highest
  bool running = false;              // a migration runner holds the lock now
};
absl::StatusOr<MigrationStatus> GetMigrationStatus(Pool& pool,
                                                   const std::vector<Migration>& migrations);

// The highest applied version (0 for an empty database).
absl::StatusOr<int> SchemaVersion(Pool& pool);

// FailedPrecondition naming both versions unless the database's schema is at
// least `needed`. Services call this before serving.
absl::Status RequireSchema(Pool& pool, int needed);

}  // namespace c2d::pg
