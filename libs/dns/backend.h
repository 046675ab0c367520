#pragma once

// Where c2d's DNS records are served from (DESIGN point 12): PowerDNS
// Authoritative (libs/dns/pdns.h) on one machine, Designate on OpenStack.
// The DNS service (services/dns) keeps the desired records in PostgreSQL
// and pushes them here; it marks every RRset it writes with its
// installation's tag, so that it can tell its own stale RRsets (to delete)
// from records someone else keeps in the same zone (left alone).

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace c2d::dns {

struct RRset {
  std::string name;  // absolute, with the trailing dot
  std::string type;  // A, AAAA, CNAME, TXT, SRV, …
  int ttl = 60;
  std::vector<std::string> records;  // contents in zone-file syntax
  // Who wrote it: the tag given to Backend::Apply, "" for anyone else.
  std::string tag;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Creates the zone (absolute name, trailing dot) unless it exists.
  virtual absl::Status EnsureZone(const std::string& zone) = 0;
  // Every RRset of the zone but its SOA and NS. NotFound without the zone.
  virtual absl::StatusOr<std::vector<RRset>> List(const std::string& zone) = 0;
  // Replaces each RRset (name, type) of `changes` with its records, tagged
  // `tag`; an RRset without records is deleted. All or nothing where the
  // backend allows it; repeating a call changes nothing.
  virtual absl::Status Apply(const std::string& zone, const std::vector<RRset>& changes,
                             const std::string& tag) = 0;
};

}  // namespace c2d::dns
