#pragma once

// The rules of the DNS service's records (proto/c2d/v1/dns.proto) and their
// translation to the backend's zone-file contents, without I/O: what a
// record may hold, which zone a name belongs to, and what a sync must
// change to make a backend zone what PostgreSQL says.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "libs/dns/backend.h"
#include "proto/c2d/v1/dns.pb.h"

namespace c2d::dns {

// "a", "aaaa", "cname", "txt", "srv" (the column's spelling); "" for
// RECORD_TYPE_UNSPECIFIED.
std::string TypeColumn(v1::RecordType type);
v1::RecordType TypeFromColumn(absl::string_view column);
std::string ZoneKindColumn(v1::ZoneKind kind);
v1::ZoneKind ZoneKindFromColumn(absl::string_view column);

// A lower-case FQDN without trailing dot whose labels are letters, digits,
// hyphens and underscores (for "_acme-challenge"), an optional "*" first
// label, at most 253 characters.
bool ValidRecordName(absl::string_view name);
// "<kind>:<id>" with kind service, database, certificate or system.
bool ValidOwner(absl::string_view owner);
// The zone among `zones` (names) whose name is the longest suffix of
// `name` on a label boundary; "" when none.
std::string ZoneOf(absl::string_view name, const std::vector<std::string>& zones);

// Checks one record of an UpsertRecords request and puts it in canonical
// form: ttl 0 becomes 60, IPv6 addresses are compressed, names lower-cased.
// InvalidArgument naming the field as "records[<index>].<field>".
absl::Status NormalizeRecord(v1::Record& record, int index);

// The backend's RRset for a record: absolute names, zone-file contents
// (a CNAME target and an SRV target end with a dot, TXT is quoted).
RRset ToRRset(const v1::Record& record);

// What makes `actual` (a backend zone's RRsets) hold `desired`: every
// desired RRset missing or different (records, TTL or tag), and a deletion
// (an RRset without records) for every RRset tagged `tag` that is no
// longer desired. RRsets with another tag, or none, are someone else's.
std::vector<RRset> Diff(const std::vector<RRset>& desired, const std::vector<RRset>& actual,
                        const std::string& tag);

}  // namespace c2d::dns
