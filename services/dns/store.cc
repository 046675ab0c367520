#include "services/dns/store.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/common/ids.h"
#include "libs/pg/rows.h"
#include "services/dns/records.h"

namespace c2d::dns {
namespace {

using google::protobuf::util::TimeUtil;

#define C2D_EPOCH_US(c) "coalesce((extract(epoch FROM " c ") * 1000000)::bigint, 0)"
// Columns of a record, in the order RowToRecord reads them. Values cannot
// hold a newline (records.cc), so they travel joined by one.
#define C2D_RECORD_COLUMNS                                                               \
  "id, zone_id, name, type, ttl, array_to_string(rdata, chr(10)), owner, " C2D_EPOCH_US( \
      "created_at") ", " C2D_EPOCH_US("updated_at")
#define C2D_ZONE_COLUMNS \
  "id, name, kind, serial, synced_serial, " C2D_EPOCH_US("last_synced_at") ", "           \
  "coalesce(last_sync_error, ''), " C2D_EPOCH_US("created_at")

constexpr pg::Statement kInsertZone{"dns_zones_insert", R"sql(
INSERT INTO dns_zones (id, name, kind) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING)sql"};

constexpr pg::Statement kZones{"dns_zones_all",
                               "SELECT " C2D_ZONE_COLUMNS " FROM dns_zones ORDER BY name"};
constexpr pg::Statement kZone{"dns_zones_get",
                              "SELECT " C2D_ZONE_COLUMNS " FROM dns_zones WHERE id = $1"};
constexpr pg::Statement kInstallation{"dns_installation", "SELECT id FROM installation"};

constexpr pg::Statement kLock{"dns_zone_lock",
                              "SELECT pg_advisory_xact_lock(hashtext($1 || ':' || $2))"};

constexpr pg::Statement kRecordsAt{"dns_records_at", "SELECT " C2D_RECORD_COLUMNS
                                                     " FROM dns_records WHERE zone_id = $1 AND "
                                                     "name = $2 ORDER BY type"};

// xmax = 0 tells an insert from an update; `changed` compares the row
// before the update with the new values.
constexpr pg::Statement kUpsert{"dns_records_upsert", R"sql(
WITH before AS (
  SELECT ttl, rdata FROM dns_records WHERE zone_id = $2 AND name = $3 AND type = $4
)
INSERT INTO dns_records AS r (id, zone_id, name, type, ttl, rdata, owner)
VALUES ($1, $2, $3, $4, $5, $6::text[], $7)
ON CONFLICT (zone_id, name, type) DO UPDATE
  SET ttl = EXCLUDED.ttl, rdata = EXCLUDED.rdata,
      updated_at = CASE WHEN (r.ttl, r.rdata) = (EXCLUDED.ttl, EXCLUDED.rdata)
                        THEN r.updated_at ELSE now() END
RETURNING )sql" C2D_RECORD_COLUMNS R"sql(,
  NOT EXISTS (SELECT 1 FROM before b WHERE (b.ttl, b.rdata) = ($5, $6::text[])))sql"};

constexpr pg::Statement kBump{"dns_zones_bump", R"sql(
UPDATE dns_zones SET serial = CASE WHEN serial >= 4294967295 THEN 1 ELSE serial + 1 END,
                     updated_at = now()
WHERE id = $1)sql"};

constexpr pg::Statement kDelete{"dns_records_delete", R"sql(
DELETE FROM dns_records
WHERE owner = $1 AND (cardinality($2::text[]) = 0 OR id = ANY ($2::text[]))
  AND ($3 = '' OR name = $3) AND ($4 = '' OR type = $4)
RETURNING )sql" C2D_RECORD_COLUMNS};

constexpr pg::Statement kOfZone{
    "dns_records_of_zone", "SELECT " C2D_RECORD_COLUMNS " FROM dns_records WHERE zone_id = $1"};

constexpr pg::Statement kList{"dns_records_list", "SELECT " C2D_RECORD_COLUMNS R"sql(
FROM dns_records
WHERE ($1 = '' OR zone_id = $1) AND ($2 = '' OR owner = $2) AND ($3 = '' OR name = $3)
  AND ($4 = '' OR (name, type, id) > (SELECT name, type, id FROM dns_records WHERE id = $4))
ORDER BY name, type, id
LIMIT $5)sql"};

constexpr pg::Statement kSynced{"dns_zones_synced", R"sql(
UPDATE dns_zones SET synced_serial = $2, last_synced_at = now(), last_sync_error = NULL
WHERE id = $1)sql"};
constexpr pg::Statement kSyncError{"dns_zones_sync_error", R"sql(
UPDATE dns_zones SET last_sync_error = $2 WHERE id = $1)sql"};

google::protobuf::Timestamp Micros(int64_t us) { return TimeUtil::MicrosecondsToTimestamp(us); }

v1::Record RowToRecord(const pqxx::row& row) {
  v1::Record r;
  r.set_id(row[0].as<std::string>());
  r.set_zone_id(row[1].as<std::string>());
  r.set_name(row[2].as<std::string>());
  r.set_type(TypeFromColumn(row[3].as<std::string>()));
  r.set_ttl(row[4].as<int>());
  for (absl::string_view v : absl::StrSplit(row[5].as<std::string>(), '\n')) {
    r.add_values(std::string(v));
  }
  r.set_owner(row[6].as<std::string>());
  if (int64_t us = row[7].as<int64_t>(); us > 0) *r.mutable_created_at() = Micros(us);
  if (int64_t us = row[8].as<int64_t>(); us > 0) *r.mutable_updated_at() = Micros(us);
  return r;
}

v1::Zone RowToZone(const pqxx::row& row) {
  v1::Zone z;
  z.set_id(row[0].as<std::string>());
  z.set_name(row[1].as<std::string>());
  z.set_kind(ZoneKindFromColumn(row[2].as<std::string>()));
  z.set_serial(static_cast<uint32_t>(row[3].as<int64_t>()));
  z.set_synced_serial(static_cast<uint32_t>(row[4].as<int64_t>()));
  if (int64_t us = row[5].as<int64_t>(); us > 0) *z.mutable_last_synced_at() = Micros(us);
  z.set_last_sync_error(row[6].as<std::string>());
  if (int64_t us = row[7].as<int64_t>(); us > 0) *z.mutable_created_at() = Micros(us);
  return z;
}

std::vector<v1::Record> Records(const pqxx::result& rows) {
  std::vector<v1::Record> out;
  out.reserve(rows.size());
  for (const pqxx::row& row : rows) out.push_back(RowToRecord(row));
  return out;
}

}  // namespace

absl::Status InsertZones(pg::Tx& tx,
                         const std::vector<std::pair<std::string, v1::ZoneKind>>& zones) {
  for (const auto& [name, kind] : zones) {
    tx.Exec(kInsertZone, ids::New("zone"), name, ZoneKindColumn(kind));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Zone>> ListAllZones(pg::Tx& tx) {
  std::vector<v1::Zone> out;
  for (const pqxx::row& row : tx.Exec(kZones)) out.push_back(RowToZone(row));
  return out;
}

absl::StatusOr<v1::Zone> GetZone(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kZone, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("zone ", id, " does not exist"));
  return RowToZone(r[0]);
}

absl::StatusOr<std::string> InstallationTag(pg::Tx& tx) {
  pqxx::result r = tx.Exec(kInstallation);
  if (r.empty()) return absl::FailedPreconditionError("the installation row is missing");
  return absl::StrCat("c2d:", r[0][0].as<std::string>());
}

void LockZoneWrites(pg::Tx& tx, const std::string& zone_id) {
  tx.Exec(kLock, "dns_write", zone_id);
}

void LockZonePush(pg::Tx& tx, const std::string& zone_id) { tx.Exec(kLock, "dns_push", zone_id); }

absl::StatusOr<std::vector<v1::Record>> RecordsAt(pg::Tx& tx, const std::string& zone_id,
                                                  const std::string& name) {
  return Records(tx.Exec(kRecordsAt, zone_id, name));
}

absl::StatusOr<v1::Record> UpsertRecord(pg::Tx& tx, const v1::Record& record, bool* changed) {
  std::vector<std::string> values(record.values().begin(), record.values().end());
  pqxx::result r =
      tx.Exec(kUpsert, ids::New("rec"), record.zone_id(), record.name(), TypeColumn(record.type()),
              record.ttl(), pg::TextArray(values), record.owner());
  *changed = r[0][9].as<bool>();
  return RowToRecord(r[0]);
}

void BumpSerial(pg::Tx& tx, const std::string& zone_id) { tx.Exec(kBump, zone_id); }

absl::StatusOr<std::vector<v1::Record>> DeleteRecords(pg::Tx& tx,
                                                      const v1::DeleteRecordsRequest& request) {
  std::vector<std::string> ids(request.ids().begin(), request.ids().end());
  return Records(tx.Exec(kDelete, request.owner(), pg::TextArray(ids), request.name(),
                         TypeColumn(request.type())));
}

absl::StatusOr<std::vector<v1::Record>> RecordsOfZone(pg::Tx& tx, const std::string& zone_id) {
  return Records(tx.Exec(kOfZone, zone_id));
}

absl::StatusOr<v1::ListRecordsResponse> ListRecords(pg::Tx& tx,
                                                    const v1::ListRecordsRequest& request,
                                                    int page_size) {
  pqxx::result rows = tx.Exec(kList, request.zone_id(), request.owner(), request.name(),
                              request.page().page_token(), page_size + 1);
  v1::ListRecordsResponse out;
  out.set_next_page_token(pg::FillPage(rows, page_size, [&](const pqxx::row& row) {
    *out.add_records() = RowToRecord(row);
    return out.records(out.records_size() - 1).id();
  }));
  return out;
}

void MarkSynced(pg::Tx& tx, const std::string& zone_id, int64_t serial) {
  tx.Exec(kSynced, zone_id, serial);
}

void MarkSyncError(pg::Tx& tx, const std::string& zone_id, const std::string& error) {
  tx.Exec(kSyncError, zone_id, error.substr(0, 2000));
}

}  // namespace c2d::dns
