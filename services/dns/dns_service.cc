#include "services/dns/dns_service.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/jobs/queue.h"
#include "libs/rpc/proto_json.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/dns/records.h"
#include "services/dns/store.h"

namespace c2d::dns {
namespace {

constexpr int kMaxRecordsPerCall = 500;

std::string TypeName(v1::RecordType type) { return absl::AsciiStrToUpper(TypeColumn(type)); }

absl::Status EnqueueSync(pg::Tx& tx, const std::string& zone_id) {
  v1::DnsSyncJob payload;
  payload.set_zone_id(zone_id);
  C2D_ASSIGN_OR_RETURN(std::string json, rpc::ToJson(payload));
  return jobs::Enqueue(tx, {.queue = "dns",
                            .kind = "dns_sync",
                            .payload = json,
                            .priority = 50,
                            .unique_key = absl::StrCat("dns_sync:", zone_id)})
      .status();
}

// The owner and CNAME rules against what the name already holds.
absl::Status CheckNeighbours(const v1::Record& record, const std::vector<v1::Record>& at,
                             int index) {
  const std::string what = absl::StrCat("records[", index, "]: ", record.name(), " ");
  for (const v1::Record& r : at) {
    if (r.type() == record.type() && r.owner() != record.owner()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, TypeName(record.type()), " belongs to ", r.owner()));
    }
    bool cname = record.type() == v1::RECORD_TYPE_CNAME, other = r.type() == v1::RECORD_TYPE_CNAME;
    if (r.type() != record.type() && (cname || other)) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, "already has a ", TypeName(r.type()),
                       " record; a CNAME cannot share its name with another record"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAll(const v1::UpsertRecordsRequest& request, std::vector<v1::Record>& out) {
  if (request.records().empty() || request.records_size() > kMaxRecordsPerCall) {
    return rpc::InvalidField("records", "must hold 1-500 record sets");
  }
  std::set<std::pair<std::string, v1::RecordType>> seen;
  for (int i = 0; i < request.records_size(); ++i) {
    v1::Record r = request.records(i);
    C2D_RETURN_IF_ERROR(NormalizeRecord(r, i));
    if (!seen.insert({r.name(), r.type()}).second) {
      return rpc::InvalidField(absl::StrCat("records[", i, "]"),
                               "repeats a name and type of an earlier record");
    }
    out.push_back(std::move(r));
  }
  return absl::OkStatus();
}

// Sets each record's zone (the longest suffix among the zones).
absl::Status AssignZones(const std::vector<v1::Zone>& zones, std::vector<v1::Record>& records) {
  std::vector<std::string> names;
  for (const v1::Zone& z : zones) names.push_back(z.name());
  for (size_t i = 0; i < records.size(); ++i) {
    std::string zone = ZoneOf(records[i].name(), names);
    auto it = std::find_if(zones.begin(), zones.end(),
                           [&](const v1::Zone& z) { return z.name() == zone; });
    if (it == zones.end()) {
      return rpc::InvalidField(
          absl::StrCat("records[", i, "].name"),
          absl::StrCat("is in no zone c2d serves (", absl::StrJoin(names, ", "), ")"));
    }
    if (!records[i].zone_id().empty() && records[i].zone_id() != it->id()) {
      return rpc::InvalidField(absl::StrCat("records[", i, "].zone_id"),
                               absl::StrCat("is not the zone of the name (", it->id(), ")"));
    }
    records[i].set_zone_id(it->id());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DnsServiceImpl::Write(std::vector<v1::Record>& records, Touched& touched) {
  return pool_.Transact("upsert records", [&](pg::Tx& tx) -> absl::Status {
    touched.clear();
    C2D_ASSIGN_OR_RETURN(std::vector<v1::Zone> zones, ListAllZones(tx));
    C2D_RETURN_IF_ERROR(AssignZones(zones, records));
    std::set<std::string> zone_ids;
    for (const v1::Record& r : records) zone_ids.insert(r.zone_id());
    for (const std::string& id : zone_ids) LockZoneWrites(tx, id);  // sorted: no deadlock
    std::set<std::string> changed_zones;
    for (size_t i = 0; i < records.size(); ++i) {
      C2D_ASSIGN_OR_RETURN(std::vector<v1::Record> at,
                           RecordsAt(tx, records[i].zone_id(), records[i].name()));
      C2D_RETURN_IF_ERROR(CheckNeighbours(records[i], at, static_cast<int>(i)));
      bool changed = false;
      C2D_ASSIGN_OR_RETURN(records[i], UpsertRecord(tx, records[i], &changed));
      touched[records[i].zone_id()].emplace_back(records[i].name(), records[i].type());
      if (changed) changed_zones.insert(records[i].zone_id());
    }
    for (const std::string& id : changed_zones) {
      BumpSerial(tx, id);
      C2D_RETURN_IF_ERROR(EnqueueSync(tx, id));
    }
    return absl::OkStatus();
  });
}

bool DnsServiceImpl::PushAll(const Touched& touched) {
  bool synced = true;
  for (const auto& [zone_id, sets] : touched) {
    if (absl::Status s = syncer_.Push(zone_id, sets); !s.ok()) {
      log::Warn("dns: push failed; the zone's sync job retries",
                {{"zone_id", zone_id}, {"error", s.ToString()}});
      synced = false;
    }
  }
  return synced;
}

grpc::Status DnsServiceImpl::UpsertRecords(grpc::ServerContext*,
                                           const v1::UpsertRecordsRequest* request,
                                           v1::UpsertRecordsResponse* response) {
  std::vector<v1::Record> records;
  if (absl::Status s = ValidateAll(*request, records); !s.ok()) return rpc::ToGrpc(s);
  Touched touched;
  if (absl::Status s = Write(records, touched); !s.ok()) return rpc::ToGrpc(s);
  for (v1::Record& r : records) *response->add_records() = std::move(r);
  response->set_synced(PushAll(touched));
  return grpc::Status::OK;
}

grpc::Status DnsServiceImpl::DeleteRecords(grpc::ServerContext*,
                                           const v1::DeleteRecordsRequest* request,
                                           v1::DeleteRecordsResponse* response) {
  if (!ValidOwner(request->owner())) {
    return rpc::ToGrpc(
        rpc::InvalidField("owner", "must be \"<service|database|certificate|system>:<id>\""));
  }
  for (const std::string& id : request->ids()) {
    if (!ids::Valid(id, "rec"))
      return rpc::ToGrpc(rpc::InvalidField("ids", "holds a non-record id"));
  }
  Touched touched;
  absl::Status s = pool_.Transact("delete records", [&](pg::Tx& tx) -> absl::Status {
    touched.clear();
    C2D_ASSIGN_OR_RETURN(std::vector<v1::Record> gone, dns::DeleteRecords(tx, *request));
    for (const v1::Record& r : gone) touched[r.zone_id()].emplace_back(r.name(), r.type());
    for (const auto& [zone_id, sets] : touched) {
      BumpSerial(tx, zone_id);
      C2D_RETURN_IF_ERROR(EnqueueSync(tx, zone_id));
    }
    response->set_deleted(static_cast<int>(gone.size()));
    return absl::OkStatus();
  });
  if (!s.ok()) return rpc::ToGrpc(s);
  response->set_synced(PushAll(touched));
  return grpc::Status::OK;
}

grpc::Status DnsServiceImpl::ListRecords(grpc::ServerContext*,
                                         const v1::ListRecordsRequest* request,
                                         v1::ListRecordsResponse* response) {
  if (!request->zone_id().empty() && !ids::Valid(request->zone_id(), "zone")) {
    return rpc::ToGrpc(rpc::InvalidField("zone_id", "is not a zone id"));
  }
  const std::string& token = request->page().page_token();
  if (!token.empty() && !ids::Valid(token, "rec")) {
    return rpc::ToGrpc(rpc::InvalidField("page.page_token", "is not a token from a previous page"));
  }
  auto size = rpc::PageSize(request->page());
  if (!size.ok()) return rpc::ToGrpc(size.status());
  auto page =
      pool_.Read("list records", [&](pg::Tx& tx) { return dns::ListRecords(tx, *request, *size); });
  if (!page.ok()) return rpc::ToGrpc(page.status());
  *response = std::move(*page);
  return grpc::Status::OK;
}

grpc::Status DnsServiceImpl::GetZone(grpc::ServerContext*, const v1::GetZoneRequest* request,
                                     v1::Zone* response) {
  if (!ids::Valid(request->id(), "zone")) {
    return rpc::ToGrpc(rpc::InvalidField("id", "is not a zone id"));
  }
  auto zone = pool_.Read("zone", [&](pg::Tx& tx) { return dns::GetZone(tx, request->id()); });
  if (!zone.ok()) return rpc::ToGrpc(zone.status());
  *response = std::move(*zone);
  return grpc::Status::OK;
}

// A handful of zones per installation: one page holds them all.
grpc::Status DnsServiceImpl::ListZones(grpc::ServerContext*, const v1::ListZonesRequest* request,
                                       v1::ListZonesResponse* response) {
  if (auto size = rpc::PageSize(request->page()); !size.ok()) return rpc::ToGrpc(size.status());
  auto zones = pool_.Read("zones", [](pg::Tx& tx) { return ListAllZones(tx); });
  if (!zones.ok()) return rpc::ToGrpc(zones.status());
  for (v1::Zone& z : *zones) *response->add_zones() = std::move(z);
  return grpc::Status::OK;
}

}  // namespace c2d::dns
