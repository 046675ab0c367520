#include "services/deployer/config.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/env.h"
#include "libs/common/status.h"

namespace c2d::deployer {

using std::chrono::milliseconds;

std::string Config::RegistryHost() const { return cloud::RegistryHost(registry.url); }

std::string Config::Hostname(const std::string& service, const std::string& project) const {
  return absl::StrCat(service, ".", project, ".", base_domain);
}

std::string Config::InternalName(const std::string& service, const std::string& project) const {
  return absl::StrCat(service, ".", project, ".internal.", base_domain);
}

bool Config::HasPublicZone() const { return absl::StrContains(base_domain, '.'); }

absl::StatusOr<Config> Config::FromEnv() {
  Config c;
  C2D_ASSIGN_OR_RETURN(cloud::LocalEnv local, cloud::LocalEnv::FromEnv());
  c.local = std::move(local.local);
  c.registry = std::move(local.registry);
  C2D_ASSIGN_OR_RETURN(c.ingress.pdns.api_url, env::GetRequired("C2D_PDNS_API_URL"));
  C2D_ASSIGN_OR_RETURN(c.ingress.pdns.api_key, env::GetRequired("C2D_PDNS_API_KEY"));
  c.ingress.zone = env::GetString("C2D_INGRESS_ZONE", c.ingress.zone);
  if (!absl::EndsWith(c.ingress.zone, ".")) c.ingress.zone += ".";
  c.ingress.unavailable_addr = env::GetString("C2D_INGRESS_UNAVAILABLE_ADDR", "");
  c.base_domain = env::GetString("C2D_BASE_DOMAIN", c.base_domain);
  c.dbprov_addr = env::GetString("C2D_DBPROV_ADDR", "");
  C2D_ASSIGN_OR_RETURN(c.dns_addr, env::GetRequired("C2D_DNS_ADDR"));
  c.public_ipv4 = env::GetString("C2D_PUBLIC_IPV4", "");
  c.ingress_log_addr = env::GetString("C2D_INGRESS_LOG_ADDR", "");
  C2D_ASSIGN_OR_RETURN(c.reconcile_interval,
                       env::GetDuration("C2D_RECONCILE_INTERVAL", c.reconcile_interval,
                                        milliseconds(200), std::chrono::minutes(5)));
  C2D_ASSIGN_OR_RETURN(
      c.drain_grace, env::GetDuration("C2D_DRAIN_GRACE", c.drain_grace,
                                      absl::ToChronoMilliseconds(2 * ingress::Upstreams::kRefresh),
                                      std::chrono::minutes(10)));
  C2D_ASSIGN_OR_RETURN(milliseconds stop_grace,
                       env::GetDuration("C2D_STOP_GRACE", milliseconds(10'000), milliseconds(1000),
                                        std::chrono::minutes(5)));
  c.stop_grace = std::chrono::duration_cast<std::chrono::seconds>(stop_grace);
  C2D_ASSIGN_OR_RETURN(int64_t lines, env::GetInt("C2D_RUNTIME_LOG_LINES", 1000, 10, 100'000));
  c.log_lines_per_instance = static_cast<int>(lines);
  C2D_ASSIGN_OR_RETURN(c.restart_backoff,
                       env::GetDuration("C2D_RESTART_BACKOFF_BASE", c.restart_backoff,
                                        milliseconds(10), std::chrono::minutes(5)));
  C2D_ASSIGN_OR_RETURN(crypto::MasterKeys keys, crypto::MasterKeys::FromEnv());
  c.master_keys = std::move(keys);
  return c;
}

}  // namespace c2d::deployer
