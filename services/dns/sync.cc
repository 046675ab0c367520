#include "services/dns/sync.h"

#include <prometheus/counter.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/metrics/metrics.h"
#include "libs/rpc/proto_json.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/dns/records.h"
#include "services/dns/store.h"

namespace c2d::dns {
namespace {

// A dns_sync job runs the zone again while writers moved its serial on
// (their enqueue finds this job running and adds none), up to this often;
// the sweep catches anything later.
constexpr int kMaxRounds = 5;

prometheus::Family<prometheus::Counter>& Repairs() {
  static auto& family =
      prometheus::BuildCounter()
          .Name("c2d_dns_drift_repairs_total")
          .Help("Record sets the DNS sweep found different in the backend and put back, by zone")
          .Register(metrics::Registry());
  return family;
}

prometheus::Family<prometheus::Counter>& SyncErrors() {
  static auto& family = prometheus::BuildCounter()
                            .Name("c2d_dns_sync_errors_total")
                            .Help("Failed pushes of a zone to the DNS backend, by zone")
                            .Register(metrics::Registry());
  return family;
}

std::string Absolute(const std::string& name) { return absl::StrCat(name, "."); }

}  // namespace

absl::Status Syncer::EnsureZones(const std::vector<std::pair<std::string, v1::ZoneKind>>& zones) {
  C2D_RETURN_IF_ERROR(
      pool_.Transact("insert zones", [&](pg::Tx& tx) { return InsertZones(tx, zones); }));
  for (const auto& zone : zones) C2D_RETURN_IF_ERROR(backend_.EnsureZone(Absolute(zone.first)));
  return absl::OkStatus();
}

absl::StatusOr<int> Syncer::SyncZone(const std::string& zone_id) {
  std::string zone_name;
  absl::StatusOr<int> changed = pool_.Transact("sync zone", [&](pg::Tx& tx) -> absl::StatusOr<int> {
    LockZonePush(tx, zone_id);
    C2D_ASSIGN_OR_RETURN(v1::Zone zone, GetZone(tx, zone_id));
    zone_name = zone.name();
    C2D_ASSIGN_OR_RETURN(std::vector<v1::Record> records, RecordsOfZone(tx, zone_id));
    std::vector<RRset> desired;
    for (const v1::Record& r : records) desired.push_back(ToRRset(r));
    absl::StatusOr<std::vector<RRset>> actual = backend_.List(Absolute(zone.name()));
    if (absl::IsNotFound(actual.status())) {  // the zone itself was deleted behind c2d's back
      C2D_RETURN_IF_ERROR(backend_.EnsureZone(Absolute(zone.name())));
      actual = std::vector<RRset>{};
    }
    C2D_RETURN_IF_ERROR(actual.status());
    std::vector<RRset> changes = Diff(desired, *actual, tag_);
    C2D_RETURN_IF_ERROR(backend_.Apply(Absolute(zone.name()), changes, tag_));
    MarkSynced(tx, zone_id, zone.serial());
    return static_cast<int>(changes.size());
  });
  if (!changed.ok() && !zone_name.empty()) {
    SyncErrors().Add({{"zone", zone_name}}).Increment();
    (void)pool_.Transact("sync error", [&](pg::Tx& tx) {
      MarkSyncError(tx, zone_id, changed.status().ToString());
      return absl::OkStatus();
    });
  }
  return changed;
}

absl::Status Syncer::Push(const std::string& zone_id,
                          const std::vector<std::pair<std::string, v1::RecordType>>& sets) {
  return pool_.Transact("push records", [&](pg::Tx& tx) -> absl::Status {
    LockZonePush(tx, zone_id);
    C2D_ASSIGN_OR_RETURN(v1::Zone zone, GetZone(tx, zone_id));
    std::vector<RRset> changes;
    std::set<std::pair<std::string, v1::RecordType>> seen;
    for (const auto& set : sets) {
      if (!seen.insert(set).second) continue;
      C2D_ASSIGN_OR_RETURN(std::vector<v1::Record> at, RecordsAt(tx, zone_id, set.first));
      v1::Record gone;
      gone.set_name(set.first);
      gone.set_type(set.second);
      RRset rrset = ToRRset(gone);
      for (const v1::Record& r : at) {
        if (r.type() == set.second) rrset = ToRRset(r);
      }
      changes.push_back(std::move(rrset));
    }
    return backend_.Apply(Absolute(zone.name()), changes, tag_);
  });
}

void Syncer::Sweep() {
  auto zones = pool_.Read("zones", [](pg::Tx& tx) { return ListAllZones(tx); });
  if (!zones.ok()) {
    log::Warn("dns sweep: cannot list zones", {{"error", zones.status().ToString()}});
    return;
  }
  for (const v1::Zone& zone : *zones) {
    absl::Status s = backend_.EnsureZone(Absolute(zone.name()));
    absl::StatusOr<int> changed = s.ok() ? SyncZone(zone.id()) : absl::StatusOr<int>(s);
    if (!changed.ok()) {
      log::Warn("dns sweep: zone not in sync",
                {{"zone", zone.name()}, {"error", changed.status().ToString()}});
    } else if (*changed > 0) {
      Repairs().Add({{"zone", zone.name()}}).Increment(*changed);
      log::Info("dns sweep: repaired drift", {{"zone", zone.name()}, {"record_sets", *changed}});
    }
  }
}

void Syncer::RegisterJobs(jobs::Worker& worker) {
  worker.Register("dns_sync", [this](jobs::JobContext& ctx) { return HandleSync(ctx); });
}

absl::Status Syncer::HandleSync(jobs::JobContext& ctx) {
  v1::DnsSyncJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.zone_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("dns_sync: malformed payload"));
  }
  for (int round = 0; round < kMaxRounds && !ctx.cancelled(); ++round) {
    auto zone = pool_.Read("zone", [&](pg::Tx& tx) { return GetZone(tx, payload.zone_id()); });
    if (absl::IsNotFound(zone.status())) return jobs::Permanent(zone.status());
    C2D_RETURN_IF_ERROR(zone.status());
    if (round > 0 && zone->synced_serial() == zone->serial()) return absl::OkStatus();
    C2D_RETURN_IF_ERROR(SyncZone(payload.zone_id()).status());
  }
  return absl::OkStatus();
}

}  // namespace c2d::dns
