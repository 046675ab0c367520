#include "services/deployer/config.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/env.h"
#include "libs/common/status.h"
#include "libs/oci/access.h"

namespace c2d::deployer {

using std::chrono::milliseconds;

std::string Config::RegistryHost() const {
  absl::string_view u = registry.url;
  size_t scheme = u.find("://");
  if (scheme != absl::string_view::npos) u.remove_prefix(scheme + 3);
  return std::string(u.substr(0, u.find('/')));
}

std::string Config::Hostname(const std::string& service, const std::string& project) const {
  return absl::StrCat(service, ".", project, ".", base_domain);
}

absl::StatusOr<Config> Config::FromEnv() {
  Config c;
  C2D_ASSIGN_OR_RETURN(c.local.engine_socket, env::GetRequired("C2D_ENGINE_SOCKET"));
  C2D_ASSIGN_OR_RETURN(c.registry.url, env::GetRequired("C2D_REGISTRY_URL"));
  if (!absl::StartsWith(c.registry.url, "http://") &&
      !absl::StartsWith(c.registry.url, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "C2D_REGISTRY_URL=\"", c.registry.url, "\" is not valid: expected http(s)://host:port"));
  }
  c.registry.username = env::GetString("C2D_REGISTRY_USER", "");
  c.registry.password = env::GetString("C2D_REGISTRY_PASSWORD", "");
  c.local.registry = {c.registry.username, c.registry.password, c.RegistryHost()};
  c.local.grant_key = oci::GrantKey(c.registry.password);
  c.local.volumes_dir = env::GetString(
      "C2D_VOLUMES_DIR", (std::filesystem::temp_directory_path() / "c2d-volumes").string());
  C2D_ASSIGN_OR_RETURN(c.ingress.pdns.api_url, env::GetRequired("C2D_PDNS_API_URL"));
  C2D_ASSIGN_OR_RETURN(c.ingress.pdns.api_key, env::GetRequired("C2D_PDNS_API_KEY"));
  c.ingress.zone = env::GetString("C2D_INGRESS_ZONE", c.ingress.zone);
  if (!absl::EndsWith(c.ingress.zone, ".")) c.ingress.zone += ".";
  c.ingress.unavailable_addr = env::GetString("C2D_INGRESS_UNAVAILABLE_ADDR", "");
  c.base_domain = env::GetString("C2D_BASE_DOMAIN", c.base_domain);
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
