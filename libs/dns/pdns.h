#pragma once

// A client of the PowerDNS Authoritative HTTP API (v1), enough for c2d's
// zones: create a zone, list it, read, replace and delete RRsets. c2d runs
// one PowerDNS on loopback (tools/lib/pdns.sh); the DNS service writes every
// zone it serves through this client (the local ingress's upstream table
// among them). A tag is kept as the RRset's comment (account "c2d").
// Thread-safe.

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/dns/backend.h"

namespace c2d::dns {

struct PdnsOptions {
  std::string api_url;  // e.g. http://127.0.0.1:8081
  std::string api_key;
  std::string server = "localhost";  // PowerDNS's server id
  std::chrono::milliseconds timeout{5000};
};

class Pdns : public Backend {
 public:
  explicit Pdns(PdnsOptions options);

  // Creates the zone (a Native zone, no NS records) unless it exists.
  absl::Status EnsureZone(const std::string& zone) override;
  absl::StatusOr<std::vector<RRset>> List(const std::string& zone) override;
  // One PATCH: PowerDNS applies it in one transaction.
  absl::Status Apply(const std::string& zone, const std::vector<RRset>& changes,
                     const std::string& tag) override;
  // OK when the zone exists, NotFound otherwise.
  absl::Status CheckZone(const std::string& zone);
  // Replaces the RRset (name, type) of `zone` with `rrset`; no records
  // deletes it.
  absl::Status Replace(const std::string& zone, const RRset& rrset);
  absl::Status Delete(const std::string& zone, const std::string& name, const std::string& type);
  // NotFound when there is no such RRset.
  absl::StatusOr<RRset> Get(const std::string& zone, const std::string& name,
                            const std::string& type);

 private:
  // CallOnce, tried up to 3 times while it is Unavailable.
  absl::StatusOr<std::string> Call(const std::string& method, const std::string& path,
                                   const std::string& body);
  absl::StatusOr<std::string> CallOnce(const std::string& method, const std::string& path,
                                       const std::string& body);
  absl::Status Patch(const std::string& zone, const std::string& rrsets_json);

  const PdnsOptions options_;
};

}  // namespace c2d::dns
