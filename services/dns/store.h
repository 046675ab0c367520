#pragma once

// The DNS service's statements over dns_zones and dns_records. Every
// function runs inside the caller's transaction.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/dns.pb.h"

namespace c2d::dns {

// Creates the zones that do not exist yet (by name).
absl::Status InsertZones(pg::Tx& tx,
                         const std::vector<std::pair<std::string, v1::ZoneKind>>& zones);
// Every zone, sorted by name.
absl::StatusOr<std::vector<v1::Zone>> ListAllZones(pg::Tx& tx);
// NotFound when there is no such zone.
absl::StatusOr<v1::Zone> GetZone(pg::Tx& tx, const std::string& id);
// "c2d:<installation id>": marks the backend RRsets this installation wrote.
absl::StatusOr<std::string> InstallationTag(pg::Tx& tx);

// Serialises writers of one zone's records until the transaction ends (the
// owner and CNAME rules are checked against what is there).
void LockZoneWrites(pg::Tx& tx, const std::string& zone_id);
// Serialises pushes of one zone to the backend until the transaction ends,
// so that the last push reads the last committed records.
void LockZonePush(pg::Tx& tx, const std::string& zone_id);

// The records at one name of a zone.
absl::StatusOr<std::vector<v1::Record>> RecordsAt(pg::Tx& tx, const std::string& zone_id,
                                                  const std::string& name);
// Inserts or replaces the record set (zone_id, name, type) and returns it as
// stored; `changed` tells whether its TTL or values differ from before.
absl::StatusOr<v1::Record> UpsertRecord(pg::Tx& tx, const v1::Record& record, bool* changed);
// Adds one to the zone's serial (RFC 1982: 4294967295 wraps to 1).
void BumpSerial(pg::Tx& tx, const std::string& zone_id);
// Deletes the owner's records matching the request's filters; returns them.
absl::StatusOr<std::vector<v1::Record>> DeleteRecords(pg::Tx& tx,
                                                      const v1::DeleteRecordsRequest& request);
// Every record of the zone.
absl::StatusOr<std::vector<v1::Record>> RecordsOfZone(pg::Tx& tx, const std::string& zone_id);
// One page of records by name, type and id after the record `after_id`.
absl::StatusOr<v1::ListRecordsResponse> ListRecords(pg::Tx& tx,
                                                    const v1::ListRecordsRequest& request,
                                                    int page_size);

void MarkSynced(pg::Tx& tx, const std::string& zone_id, int64_t serial);
void MarkSyncError(pg::Tx& tx, const std::string& zone_id, const std::string& error);

}  // namespace c2d::dns
