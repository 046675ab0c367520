#pragma once

// Designate (DNS v2) as a backend of c2d's DNS service in OpenStack mode
// (DESIGN §1 point 12), next to PowerDNS: the DNS service keeps the desired
// records in PostgreSQL and pushes them here.
//
// A recordset's writer tag is kept in its description ("c2d:<tag>"), as
// PowerDNS keeps it in a comment. Designate has no transaction across
// recordsets: Apply changes them one by one (each change is idempotent, so
// the DNS service's next sync finishes what a failure left). Zones are made
// with their email hostmaster@<zone> and waited for until ACTIVE.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "libs/cloud/openstack/session.h"
#include "libs/dns/backend.h"

namespace c2d::cloud::openstack {

class Designate final : public dns::Backend {
 public:
  explicit Designate(Session& session, absl::Duration zone_timeout = absl::Minutes(2),
                     absl::Duration poll = absl::Seconds(1))
      : session_(session), zone_timeout_(zone_timeout), poll_(poll) {}

  absl::Status EnsureZone(const std::string& zone) override;
  absl::StatusOr<std::vector<dns::RRset>> List(const std::string& zone) override;
  absl::Status Apply(const std::string& zone, const std::vector<dns::RRset>& changes,
                     const std::string& tag) override;

 private:
  absl::StatusOr<std::optional<std::string>> ZoneId(const std::string& zone);
  absl::StatusOr<std::string> RequireZone(const std::string& zone);
  // The id of the recordset (name, type), if any.
  absl::StatusOr<std::optional<std::string>> RecordsetId(const std::string& zone_id,
                                                         const std::string& name,
                                                         const std::string& type);
  absl::Status ApplyOne(const std::string& zone_id, const dns::RRset& change,
                        const std::string& tag);

  Session& session_;
  const absl::Duration zone_timeout_;
  const absl::Duration poll_;
};

// A recordset of Designate's answer as an RRset (tag from its description).
dns::RRset ParseRecordset(const nlohmann::json& recordset);

}  // namespace c2d::cloud::openstack
