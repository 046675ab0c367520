#pragma once

// The DNS service's configuration, from C2D_* variables (README lists them).

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/dns/pdns.h"
#include "proto/c2d/v1/dns.pb.h"

namespace c2d::dns {

struct Config {
  // Where records are served: "pdns" (PowerDNS) or "designate" (OpenStack,
  // with the C2D_OS_* credentials of libs/cloud/openstack/cloud.h).
  std::string backend = "pdns";           // C2D_DNS_BACKEND
  PdnsOptions pdns;                       // C2D_PDNS_API_URL, C2D_PDNS_API_KEY (pdns only)
  std::string base_domain = "localhost";  // C2D_BASE_DOMAIN
  // The local ingress's upstream table, without the trailing dot; empty =
  // none (OpenStack).
  std::string ingress_zone = "ingress.c2d.internal";  // C2D_INGRESS_ZONE
  // How often the leader compares every zone with the backend and repairs
  // what drifted.
  std::chrono::milliseconds sweep_interval{30'000};  // C2D_DNS_SWEEP_INTERVAL

  // The zones this installation serves, created at start: <base_domain>
  // (public; only when it has a dot: "localhost" names resolve to loopback
  // by themselves, RFC 6761), internal.<base_domain>, and the ingress zone.
  std::vector<std::pair<std::string, v1::ZoneKind>> Zones() const;

  static absl::StatusOr<Config> FromEnv();
};

}  // namespace c2d::dns
