#include "services/gateway/config.h"

#include "absl/strings/str_cat.h"
#include "libs/common/env.h"
#include "libs/common/status.h"

namespace c2d::gateway {

std::string Config::AppUrl(const std::string& service, const std::string& project) const {
  std::string port;
  if (size_t colon = ingress_http_addr.rfind(':'); colon != std::string::npos) {
    port = ingress_http_addr.substr(colon + 1);
  }
  return absl::StrCat("http://", AppHostname(service, project),
                      port.empty() || port == "80" ? "" : ":" + port, "/");
}

std::string Config::AppHostname(const std::string& service, const std::string& project) const {
  return absl::StrCat(service, ".", project, ".", base_domain);
}

absl::StatusOr<Config> Config::FromEnv() {
  Config c;
  C2D_ASSIGN_OR_RETURN(c.http_addr, env::GetAddress("C2D_HTTP_ADDR", c.http_addr));
  C2D_ASSIGN_OR_RETURN(int64_t connections,
                       env::GetInt("C2D_DB_POOL_SIZE", c.http_workers, 1, 1000));
  C2D_ASSIGN_OR_RETURN(int64_t workers, env::GetInt("C2D_HTTP_WORKERS", connections, 1, 1024));
  c.http_workers = static_cast<int>(workers);
  C2D_ASSIGN_OR_RETURN(c.builder_addr, env::GetRequired("C2D_BUILDER_ADDR"));
  C2D_ASSIGN_OR_RETURN(c.deployer_addr, env::GetRequired("C2D_DEPLOYER_ADDR"));
  c.dbprov_addr = env::GetString("C2D_DBPROV_ADDR", "");
  c.certs_addr = env::GetString("C2D_CERTS_ADDR", "");
  c.base_domain = env::GetString("C2D_BASE_DOMAIN", c.base_domain);
  c.local_repo_root = env::GetString("C2D_LOCAL_REPO_ROOT", "");
  c.ingress_http_addr = env::GetString("C2D_INGRESS_HTTP_ADDR", "");
  C2D_ASSIGN_OR_RETURN(c.rpc_timeout,
                       env::GetDuration("C2D_RPC_TIMEOUT", c.rpc_timeout,
                                        std::chrono::milliseconds(100), std::chrono::minutes(5)));
  C2D_ASSIGN_OR_RETURN(int64_t rps, env::GetInt("C2D_USER_RPS", 20, 1, 100'000));
  C2D_ASSIGN_OR_RETURN(int64_t burst, env::GetInt("C2D_USER_BURST", 100, 1, 100'000));
  C2D_ASSIGN_OR_RETURN(int64_t streams, env::GetInt("C2D_USER_STREAMS", 20, 1, 100'000));
  c.user_rps = static_cast<double>(rps);
  c.user_burst = static_cast<double>(burst);
  c.user_streams = static_cast<int>(streams);
  C2D_ASSIGN_OR_RETURN(int64_t previews, env::GetInt("C2D_PREVIEWS_PER_PROJECT", 5, 0, 1000));
  c.previews_per_project = static_cast<int>(previews);
  C2D_ASSIGN_OR_RETURN(c.rename_hold,
                       env::GetDuration("C2D_RENAME_HOLD", c.rename_hold,
                                        std::chrono::milliseconds(0), std::chrono::hours(24 * 90)));
  C2D_ASSIGN_OR_RETURN(crypto::MasterKeys keys, crypto::MasterKeys::FromEnv());
  c.master_keys = std::move(keys);
  return c;
}

}  // namespace c2d::gateway
