#pragma once

// The databases table (dbprov owns it; see migrations/0001 and 0008).

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/crypto/seal.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/dbprov.pb.h"

namespace c2d::dbprov {

// A database row: the API's view plus what only dbprov reads.
struct DatabaseRow {
  v1::Database db;
  std::string provider_ref;
  crypto::Sealed admin_password, password_a, password_b;
};

// The aad that binds a database's sealed password ("admin", "a" or "b") to it.
std::string PasswordAad(const std::string& database_id, absl::string_view role);

// ALREADY_EXISTS when the project has a live database of that name;
// NOT_FOUND when the project does not exist.
absl::Status InsertDatabase(pg::Tx& tx, const DatabaseRow& row);
// NOT_FOUND for an unknown id (a deleted database is found, in state DELETED).
absl::StatusOr<DatabaseRow> GetDatabase(pg::Tx& tx, const std::string& id);
// A page of the project's databases that are not deleted, newest first,
// after the cursor `after` (an id; "" = from the start).
absl::StatusOr<v1::ListDatabasesResponse> ListDatabases(pg::Tx& tx, const std::string& project_id,
                                                        const std::string& after, int page_size);
// State changes; each returns false when the row was not in a state the
// change applies to (so a job run twice changes nothing the second time).
absl::StatusOr<bool> MarkAvailable(pg::Tx& tx, const std::string& id, const std::string& host,
                                   int port, const std::string& provider_ref);
absl::StatusOr<bool> MarkFailed(pg::Tx& tx, const std::string& id, const std::string& reason);
// From any state but DELETING and DELETED.
absl::StatusOr<bool> MarkDeleting(pg::Tx& tx, const std::string& id);
absl::StatusOr<bool> MarkDeleted(pg::Tx& tx, const std::string& id);
// Cancels the jobs with `unique_key` that have not started; returns how
// many are running.
absl::StatusOr<int64_t> CancelJobs(pg::Tx& tx, const std::string& unique_key);
absl::StatusOr<int64_t> CountLinks(pg::Tx& tx, const std::string& database_id);

}  // namespace c2d::dbprov
