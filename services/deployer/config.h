#pragma once

// The deployer's configuration, from C2D_* variables (README lists them).

#include <chrono>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "libs/cloud/local_provider.h"
#include "libs/crypto/seal.h"
#include "libs/ingress/upstreams.h"
#include "libs/oci/registry.h"

namespace c2d::deployer {

struct Config {
  cloud::LocalOptions local;              // C2D_ENGINE_SOCKET, C2D_REGISTRY_*, C2D_VOLUMES_DIR
  oci::RegistryOptions registry;          // C2D_REGISTRY_URL, _USER, _PASSWORD
  ingress::Options ingress;               // C2D_PDNS_API_URL, C2D_PDNS_API_KEY, C2D_INGRESS_ZONE,
                                          // C2D_INGRESS_UNAVAILABLE_ADDR
  std::string base_domain = "localhost";  // C2D_BASE_DOMAIN
  std::chrono::milliseconds reconcile_interval{2000};  // C2D_RECONCILE_INTERVAL
  // How long replaced instances keep serving requests already routed to
  // them; at least the ingress's refresh, so none is sent to a stopped one.
  std::chrono::milliseconds drain_grace{5000};  // C2D_DRAIN_GRACE
  std::chrono::seconds stop_grace{10};          // C2D_STOP_GRACE: SIGTERM to SIGKILL
  int log_lines_per_instance = 1000;            // C2D_RUNTIME_LOG_LINES
  // First restart delay of a crashed instance; it doubles up to 5 min.
  std::chrono::milliseconds restart_backoff{1000};  // C2D_RESTART_BACKOFF_BASE
  std::optional<crypto::MasterKeys> master_keys;    // C2D_MASTER_KEY
  // dbprov's gRPC address, to resolve database links; empty: releases with
  // links fail.
  std::string dbprov_addr;  // C2D_DBPROV_ADDR
  // The DNS service, which owns the ingress's upstream records (and every
  // other DNS record).
  std::string dns_addr;  // C2D_DNS_ADDR, required
  // Where app hostnames in the public zone point (the ingress's address);
  // empty = no A records for them.
  std::string public_ipv4;  // C2D_PUBLIC_IPV4
  // DNS round-robin instead of the host ingress (the OpenStack provider,
  // DESIGN §1 point 1): a hostname's A records are its healthy instances'
  // public addresses, each instance's own Caddy serving it.
  bool dns_routing = false;  // set with C2D_PROVIDER=openstack
  // Where the ingress sends its access log (UDP host:port, access_log.h);
  // empty: no per-app request metrics.
  std::string ingress_log_addr;  // C2D_INGRESS_LOG_ADDR

  // registry.url's host:port: images must come from this registry.
  std::string RegistryHost() const;
  // <service>.<project>.<base domain>
  std::string Hostname(const std::string& service, const std::string& project) const;
  // <service>.<project>.internal.<base_domain>: the name of a service's
  // healthy instances on its project's network.
  std::string InternalName(const std::string& service, const std::string& project) const;
  // True when <base_domain> is a zone c2d serves (it has a dot; "localhost"
  // names resolve to loopback by themselves).
  bool HasPublicZone() const;

  static absl::StatusOr<Config> FromEnv();
};

}  // namespace c2d::deployer
