#include "services/builder/config.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/env.h"
#include "libs/common/status.h"

namespace c2d::builder {

using std::chrono::milliseconds;

std::string Config::RegistryHost() const {
  absl::string_view u = registry_url;
  size_t scheme = u.find("://");
  if (scheme != absl::string_view::npos) u.remove_prefix(scheme + 3);
  return std::string(u.substr(0, u.find('/')));
}

absl::StatusOr<Config> Config::FromEnv() {
  Config c;
  C2D_ASSIGN_OR_RETURN(c.engine_socket, env::GetRequired("C2D_BUILD_ENGINE_SOCKET"));
  c.engine_cgroup = env::GetString("C2D_BUILD_ENGINE_CGROUP", "");
  c.build_user = env::GetString("C2D_BUILD_USER", c.build_user);
  C2D_ASSIGN_OR_RETURN(c.registry_url, env::GetRequired("C2D_REGISTRY_URL"));
  if (!absl::StartsWith(c.registry_url, "http://") &&
      !absl::StartsWith(c.registry_url, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "C2D_REGISTRY_URL=\"", c.registry_url, "\" is not valid: expected http(s)://host:port"));
  }
  c.registry_user = env::GetString("C2D_REGISTRY_USER", "");
  c.registry_password = env::GetString("C2D_REGISTRY_PASSWORD", "");
  c.local_repo_root = env::GetString("C2D_LOCAL_REPO_ROOT", "");
  c.work_dir = env::GetString("C2D_BUILD_WORK_DIR",
                              (std::filesystem::temp_directory_path() / "c2d-builds").string());
  C2D_ASSIGN_OR_RETURN(c.build_timeout,
                       env::GetDuration("C2D_BUILD_TIMEOUT", c.build_timeout, milliseconds(1000),
                                        std::chrono::hours(24)));
  C2D_ASSIGN_OR_RETURN(c.git_timeout, env::GetDuration("C2D_GIT_TIMEOUT", c.git_timeout,
                                                       milliseconds(1000), std::chrono::hours(1)));
  C2D_ASSIGN_OR_RETURN(int64_t memory_mb, env::GetInt("C2D_BUILD_MEMORY_MB", 2048, 64, 1 << 20));
  c.build_memory_bytes = memory_mb << 20;
  C2D_ASSIGN_OR_RETURN(c.max_image_bytes,
                       env::GetInt("C2D_MAX_IMAGE_BYTES", c.max_image_bytes, 1, int64_t{1} << 42));
  C2D_ASSIGN_OR_RETURN(c.max_context_bytes, env::GetInt("C2D_MAX_CONTEXT_BYTES",
                                                        c.max_context_bytes, 1, int64_t{1} << 40));
  C2D_ASSIGN_OR_RETURN(int64_t keep, env::GetInt("C2D_GC_KEEP_BUILDS", 10, 1, 1000));
  c.keep_builds = static_cast<int>(keep);
  C2D_ASSIGN_OR_RETURN(int64_t per_user, env::GetInt("C2D_MAX_BUILDS_PER_USER", 5, 1, 1000));
  c.max_builds_per_user = static_cast<int>(per_user);
  C2D_ASSIGN_OR_RETURN(c.gc_interval,
                       env::GetDuration("C2D_GC_INTERVAL", c.gc_interval, milliseconds(1000),
                                        std::chrono::hours(24 * 7)));
  C2D_ASSIGN_OR_RETURN(crypto::MasterKeys keys, crypto::MasterKeys::FromEnv());
  c.master_keys = std::move(keys);
  c.stacks = Stacks::FromEnv(c.RegistryHost());
  c.deployer_addr = env::GetString("C2D_DEPLOYER_ADDR", "");
  return c;
}

}  // namespace c2d::builder
