#include "services/dbprov/store.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/pg/rows.h"

namespace c2d::dbprov {
namespace {

#define C2D_SEALED(p) p "_key_id, " p "_wrapped_key, " p "_nonce, " p "_ciphertext"
#define C2D_EPOCH_US(c) "(extract(epoch FROM " c ") * 1000000)::bigint"
// Columns of a DatabaseRow, in the order RowToDatabase reads them.
#define C2D_DATABASE_COLUMNS \
  "id, project_id, name, engine, version, plan, state, coalesce(failure_reason, ''), "        \
  "coalesce(host, ''), coalesce(port, 0), active_role, backup_schedule, retention_daily, "    \
  "retention_weekly, rotation_days, " C2D_EPOCH_US("created_at") ", " C2D_EPOCH_US(           \
      "updated_at") ", " C2D_EPOCH_US("last_rotated_at") ", " C2D_EPOCH_US("last_backup_at") \
      ", coalesce(provider_ref, ''), " C2D_SEALED("admin_password") ", " C2D_SEALED(          \
          "password_a") ", " C2D_SEALED("password_b") ", coalesce(retiring_role, '')"

constexpr pg::Statement kInsert{"databases_insert", R"sql(
INSERT INTO databases (id, project_id, name, engine, version, plan, backup_schedule,
                       retention_daily, retention_weekly, rotation_days,
                       admin_password_key_id, admin_password_wrapped_key, admin_password_nonce,
                       admin_password_ciphertext,
                       password_a_key_id, password_a_wrapped_key, password_a_nonce,
                       password_a_ciphertext,
                       password_b_key_id, password_b_wrapped_key, password_b_nonce,
                       password_b_ciphertext)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
        $11, decode($12, 'hex'), decode($13, 'hex'), decode($14, 'hex'),
        $15, decode($16, 'hex'), decode($17, 'hex'), decode($18, 'hex'),
        $19, decode($20, 'hex'), decode($21, 'hex'), decode($22, 'hex')))sql"};

constexpr pg::Statement kGet{"databases_get",
                             "SELECT " C2D_DATABASE_COLUMNS " FROM databases WHERE id = $1"};

constexpr pg::Statement kList{"databases_list", "SELECT " C2D_DATABASE_COLUMNS R"sql(
FROM databases
WHERE project_id = $1 AND state <> 'deleted'
  AND ($2 = '' OR (created_at, id) < (SELECT created_at, id FROM databases WHERE id = $2))
ORDER BY created_at DESC, id DESC
LIMIT $3)sql"};

constexpr pg::Statement kServed{"databases_served", "SELECT " C2D_DATABASE_COLUMNS R"sql(
FROM databases WHERE state IN ('available', 'rotating', 'restoring') ORDER BY id)sql"};

// A new database a backup is restored into goes on to 'restoring' (its
// restore_db job waits for this), so it is never available empty.
constexpr pg::Statement kMarkAvailable{"databases_mark_available", R"sql(
UPDATE databases
SET state = CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE unique_key = 'restore_db:' || $1
                                                   AND state IN ('available', 'running'))
                 THEN 'restoring' ELSE 'available' END,
    host = $2, port = $3, provider_ref = $4, failure_reason = NULL, updated_at = now()
WHERE id = $1 AND state = 'provisioning' RETURNING id)sql"};

constexpr pg::Statement kMarkFailed{"databases_mark_failed", R"sql(
UPDATE databases SET state = 'failed', failure_reason = $2, updated_at = now()
WHERE id = $1 AND state = 'provisioning' RETURNING id)sql"};

constexpr pg::Statement kMarkDeleting{"databases_mark_deleting", R"sql(
UPDATE databases SET state = 'deleting', updated_at = now()
WHERE id = $1 AND state NOT IN ('deleting', 'deleted') RETURNING id)sql"};

constexpr pg::Statement kMarkDeleted{"databases_mark_deleted", R"sql(
UPDATE databases SET state = 'deleted', deleted_at = now(), updated_at = now()
WHERE id = $1 AND state = 'deleting' RETURNING id)sql"};

// Rotation (rotation.cc).
constexpr pg::Statement kBeginRotation{"databases_begin_rotation", R"sql(
UPDATE databases
SET state = 'rotating', retiring_role = coalesce(retiring_role, active_role),
    failure_reason = NULL, updated_at = now()
WHERE id = $1 AND state = 'available' RETURNING id)sql"};

constexpr pg::Statement kSetPassword{"databases_set_password", R"sql(
UPDATE databases
SET password_a_key_id = CASE WHEN $2 = 'a' THEN $3 ELSE password_a_key_id END,
    password_a_wrapped_key = CASE WHEN $2 = 'a' THEN decode($4, 'hex') ELSE password_a_wrapped_key END,
    password_a_nonce = CASE WHEN $2 = 'a' THEN decode($5, 'hex') ELSE password_a_nonce END,
    password_a_ciphertext = CASE WHEN $2 = 'a' THEN decode($6, 'hex') ELSE password_a_ciphertext END,
    password_b_key_id = CASE WHEN $2 = 'b' THEN $3 ELSE password_b_key_id END,
    password_b_wrapped_key = CASE WHEN $2 = 'b' THEN decode($4, 'hex') ELSE password_b_wrapped_key END,
    password_b_nonce = CASE WHEN $2 = 'b' THEN decode($5, 'hex') ELSE password_b_nonce END,
    password_b_ciphertext = CASE WHEN $2 = 'b' THEN decode($6, 'hex') ELSE password_b_ciphertext END,
    updated_at = now()
WHERE id = $1 AND $2 IN ('a', 'b'))sql"};

constexpr pg::Statement kSwitchRole{"databases_switch_role", R"sql(
UPDATE databases SET active_role = $2, updated_at = now()
WHERE id = $1 AND state = 'rotating' RETURNING id)sql"};

constexpr pg::Statement kEndRotation{"databases_end_rotation", R"sql(
UPDATE databases
SET state = 'available', updated_at = now(), failure_reason = nullif($3, ''),
    retiring_role = CASE WHEN $2 THEN NULL ELSE retiring_role END,
    last_rotated_at = CASE WHEN $2 THEN now() ELSE last_rotated_at END
WHERE id = $1 AND state = 'rotating' RETURNING id)sql"};

constexpr pg::Statement kDueRotations{"databases_due_rotations", R"sql(
SELECT id FROM databases
WHERE state = 'available' AND rotation_days > 0
  AND coalesce(last_rotated_at, created_at) + rotation_days * interval '1 day' <= now()
ORDER BY id LIMIT $1)sql"};

constexpr pg::Statement kCountLinks{"databases_count_links",
                                    "SELECT count(*) FROM database_links WHERE database_id = $1"};

#define C2D_LINK_COLUMNS                                                          \
  "l.id, l.database_id, l.service_id, l.project_id, l.env_prefix, " C2D_EPOCH_US( \
      "l.created_at") ", d.name, d.engine"

// Only a service of the link's project can be linked.
constexpr pg::Statement kInsertLink{"database_links_insert", R"sql(
INSERT INTO database_links (id, database_id, service_id, project_id, env_prefix)
SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM services WHERE id = $3 AND project_id = $4)
RETURNING id)sql"};

constexpr pg::Statement kLinkConflict{"database_links_conflict", R"sql(
SELECT database_id = $1 FROM database_links
WHERE service_id = $2 AND (database_id = $1 OR env_prefix = $3)
ORDER BY database_id = $1 DESC LIMIT 1)sql"};

constexpr pg::Statement kGetLink{"database_links_get", "SELECT " C2D_LINK_COLUMNS R"sql(
FROM database_links l JOIN databases d ON d.id = l.database_id
WHERE l.database_id = $1 AND l.service_id = $2)sql"};

constexpr pg::Statement kDeleteLink{
    "database_links_delete",
    "DELETE FROM database_links WHERE database_id = $1 AND service_id = $2 RETURNING id"};

constexpr pg::Statement kListLinks{"database_links_list", "SELECT " C2D_LINK_COLUMNS R"sql(
FROM database_links l JOIN databases d ON d.id = l.database_id
WHERE ($1 = '' OR l.database_id = $1) AND ($2 = '' OR l.service_id = $2)
  AND ($3 = '' OR l.id > $3)
ORDER BY l.id
LIMIT $4)sql"};

// Data-modifying CTEs always run; the count reads the snapshot from before
// the statement, where a job just cancelled was available, not running.
constexpr pg::Statement kCancelJobs{"databases_cancel_jobs", R"sql(
WITH cancelled AS (
  UPDATE jobs SET state = 'cancelled', finished_at = now(), updated_at = now()
  WHERE unique_key = $1 AND state = 'available'
  RETURNING id)
SELECT count(*) FROM jobs WHERE unique_key = $1 AND state = 'running')sql"};

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

v1::DatabaseEngine ParseEngine(const std::string& s) {
  if (s == "postgres") return v1::DATABASE_ENGINE_POSTGRES;
  if (s == "mariadb") return v1::DATABASE_ENGINE_MARIADB;
  if (s == "redis") return v1::DATABASE_ENGINE_REDIS;
  return v1::DATABASE_ENGINE_UNSPECIFIED;
}

v1::DatabaseState ParseState(const std::string& s) {
  static const std::map<std::string, v1::DatabaseState> kStates = {
      {"provisioning", v1::DATABASE_STATE_PROVISIONING},
      {"available", v1::DATABASE_STATE_AVAILABLE},
      {"failed", v1::DATABASE_STATE_FAILED},
      {"deleting", v1::DATABASE_STATE_DELETING},
      {"deleted", v1::DATABASE_STATE_DELETED},
      {"restoring", v1::DATABASE_STATE_RESTORING},
      {"rotating", v1::DATABASE_STATE_ROTATING}};
  auto it = kStates.find(s);
  return it == kStates.end() ? v1::DATABASE_STATE_UNSPECIFIED : it->second;
}

crypto::Sealed SealedAt(const pqxx::row& r, int i) {
  return {r[i].as<std::string>(), pqxx::binarystring(r[i + 1]).str(),
          pqxx::binarystring(r[i + 2]).str(), pqxx::binarystring(r[i + 3]).str()};
}

DatabaseRow RowToDatabase(const pqxx::row& r) {
  DatabaseRow row;
  v1::Database& d = row.db;
  d.set_id(r[0].as<std::string>());
  d.set_project_id(r[1].as<std::string>());
  d.set_name(r[2].as<std::string>());
  d.set_engine(ParseEngine(r[3].as<std::string>()));
  d.set_version(r[4].as<std::string>());
  d.set_plan(r[5].as<std::string>());
  d.set_state(ParseState(r[6].as<std::string>()));
  d.set_failure_reason(r[7].as<std::string>());
  d.set_host(r[8].as<std::string>());
  d.set_port(r[9].as<int>());
  d.set_active_role(r[10].as<std::string>());
  d.set_backup_schedule(r[11].as<std::string>());
  d.set_retention_daily(r[12].as<int>());
  d.set_retention_weekly(r[13].as<int>());
  d.set_rotation_days(r[14].as<int>());
  pg::SetTime(r[15], d.mutable_created_at());
  pg::SetTime(r[16], d.mutable_updated_at());
  pg::SetTime(r[17], d.mutable_last_rotated_at());
  pg::SetTime(r[18], d.mutable_last_backup_at());
  row.provider_ref = r[19].as<std::string>();
  row.admin_password = SealedAt(r, 20);
  row.password_a = SealedAt(r, 24);
  row.password_b = SealedAt(r, 28);
  d.set_retiring_role(r[32].as<std::string>());
  return row;
}

const char* EngineName(v1::DatabaseEngine e) {
  switch (e) {
    case v1::DATABASE_ENGINE_POSTGRES:
      return "postgres";
    case v1::DATABASE_ENGINE_MARIADB:
      return "mariadb";
    case v1::DATABASE_ENGINE_REDIS:
      return "redis";
    default:
      return "";
  }
}

bool Changed(const pqxx::result& r) { return !r.empty(); }

v1::DatabaseLink RowToLink(const pqxx::row& r) {
  v1::DatabaseLink l;
  l.set_id(r[0].as<std::string>());
  l.set_database_id(r[1].as<std::string>());
  l.set_service_id(r[2].as<std::string>());
  l.set_project_id(r[3].as<std::string>());
  l.set_env_prefix(r[4].as<std::string>());
  pg::SetTime(r[5], l.mutable_created_at());
  l.set_database_name(r[6].as<std::string>());
  l.set_engine(ParseEngine(r[7].as<std::string>()));
  return l;
}

}  // namespace

std::string PasswordAad(const std::string& database_id, absl::string_view role) {
  return absl::StrCat("c2d/database/", database_id, "/", role);
}

absl::Status InsertDatabase(pg::Tx& tx, const DatabaseRow& row) {
  const v1::Database& d = row.db;
  const crypto::Sealed &x = row.admin_password, &a = row.password_a, &b = row.password_b;
  tx.Exec(kInsert, d.id(), d.project_id(), d.name(), std::string(EngineName(d.engine())),
          d.version(), d.plan(), d.backup_schedule(), d.retention_daily(), d.retention_weekly(),
          d.rotation_days(), x.key_id, Hex(x.wrapped_key), Hex(x.nonce), Hex(x.ciphertext),
          a.key_id, Hex(a.wrapped_key), Hex(a.nonce), Hex(a.ciphertext), b.key_id,
          Hex(b.wrapped_key), Hex(b.nonce), Hex(b.ciphertext));
  return absl::OkStatus();
}

absl::StatusOr<DatabaseRow> GetDatabase(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kGet, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("database ", id, " does not exist"));
  return RowToDatabase(r[0]);
}

absl::StatusOr<std::vector<DatabaseRow>> ServedDatabases(pg::Tx& tx) {
  std::vector<DatabaseRow> out;
  for (const pqxx::row& r : tx.Exec(kServed)) out.push_back(RowToDatabase(r));
  return out;
}

absl::StatusOr<v1::ListDatabasesResponse> ListDatabases(pg::Tx& tx, const std::string& project_id,
                                                        const std::string& after, int page_size) {
  v1::ListDatabasesResponse out;
  out.set_next_page_token(pg::FillPage(tx.Exec(kList, project_id, after, page_size + 1), page_size,
                                       [&](const pqxx::row& r) {
                                         v1::Database* d = out.add_databases();
                                         *d = RowToDatabase(r).db;
                                         return d->id();
                                       }));
  return out;
}

absl::StatusOr<bool> MarkAvailable(pg::Tx& tx, const std::string& id, const std::string& host,
                                   int port, const std::string& provider_ref) {
  return Changed(tx.Exec(kMarkAvailable, id, host, port, provider_ref));
}

absl::StatusOr<bool> MarkFailed(pg::Tx& tx, const std::string& id, const std::string& reason) {
  return Changed(tx.Exec(kMarkFailed, id, reason));
}

absl::StatusOr<bool> MarkDeleting(pg::Tx& tx, const std::string& id) {
  return Changed(tx.Exec(kMarkDeleting, id));
}

absl::StatusOr<bool> MarkDeleted(pg::Tx& tx, const std::string& id) {
  return Changed(tx.Exec(kMarkDeleted, id));
}

absl::StatusOr<bool> BeginRotation(pg::Tx& tx, const std::string& id) {
  return Changed(tx.Exec(kBeginRotation, id));
}

absl::Status SetPassword(pg::Tx& tx, const std::string& id, absl::string_view role,
                         const crypto::Sealed& s) {
  tx.Exec(kSetPassword, id, std::string(role), s.key_id, Hex(s.wrapped_key), Hex(s.nonce),
          Hex(s.ciphertext));
  return absl::OkStatus();
}

absl::StatusOr<bool> SwitchRole(pg::Tx& tx, const std::string& id, absl::string_view role) {
  return Changed(tx.Exec(kSwitchRole, id, std::string(role)));
}

absl::StatusOr<bool> EndRotation(pg::Tx& tx, const std::string& id, bool finished,
                                 const std::string& reason) {
  return Changed(tx.Exec(kEndRotation, id, finished, reason));
}

absl::StatusOr<std::vector<std::string>> DueRotations(pg::Tx& tx, int limit) {
  std::vector<std::string> out;
  for (const auto& r : tx.Exec(kDueRotations, limit)) out.push_back(r[0].as<std::string>());
  return out;
}

absl::StatusOr<int64_t> CancelJobs(pg::Tx& tx, const std::string& unique_key) {
  return tx.Exec(kCancelJobs, unique_key)[0][0].as<int64_t>();
}

absl::StatusOr<int64_t> CountLinks(pg::Tx& tx, const std::string& database_id) {
  return tx.Exec(kCountLinks, database_id)[0][0].as<int64_t>();
}

absl::StatusOr<std::string> OpenPassword(const crypto::MasterKeys& keys, const DatabaseRow& row,
                                         absl::string_view role) {
  const crypto::Sealed& sealed = role == "admin" ? row.admin_password
                                 : role == "a"   ? row.password_a
                                                 : row.password_b;
  return keys.Open(sealed, PasswordAad(row.db.id(), role));
}

absl::Status InsertLink(pg::Tx& tx, const v1::DatabaseLink& link) {
  pqxx::result conflict =
      tx.Exec(kLinkConflict, link.database_id(), link.service_id(), link.env_prefix());
  if (!conflict.empty()) {
    return absl::AlreadyExistsError(
        conflict[0][0].as<bool>()
            ? absl::StrCat("database ", link.database_name(), " is already linked to service ",
                           link.service_id())
            : absl::StrCat("service ", link.service_id(), " already has a link with env prefix ",
                           link.env_prefix(), "; choose another env_prefix"));
  }
  if (tx.Exec(kInsertLink, link.id(), link.database_id(), link.service_id(), link.project_id(),
              link.env_prefix())
          .empty()) {
    return absl::NotFoundError(
        absl::StrCat("service ", link.service_id(), " does not exist in the database's project"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::DatabaseLink> GetLink(pg::Tx& tx, const std::string& database_id,
                                         const std::string& service_id) {
  pqxx::result r = tx.Exec(kGetLink, database_id, service_id);
  if (r.empty()) {
    return absl::NotFoundError(
        absl::StrCat("database ", database_id, " is not linked to service ", service_id));
  }
  return RowToLink(r[0]);
}

absl::StatusOr<bool> DeleteLink(pg::Tx& tx, const std::string& database_id,
                                const std::string& service_id) {
  return Changed(tx.Exec(kDeleteLink, database_id, service_id));
}

absl::StatusOr<v1::ListLinksResponse> ListLinks(pg::Tx& tx, const std::string& database_id,
                                                const std::string& service_id,
                                                const std::string& after, int page_size) {
  v1::ListLinksResponse out;
  out.set_next_page_token(
      pg::FillPage(tx.Exec(kListLinks, database_id, service_id, after, page_size + 1), page_size,
                   [&](const pqxx::row& r) {
                     v1::DatabaseLink* l = out.add_links();
                     *l = RowToLink(r);
                     return l->id();
                   }));
  return out;
}

}  // namespace c2d::dbprov
