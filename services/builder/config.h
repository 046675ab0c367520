#pragma once

// The builder's configuration, from C2D_* variables (README lists them).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "libs/crypto/seal.h"
#include "services/builder/detect.h"

namespace c2d::builder {

struct Config {
  // C2D_BUILD_ENGINE_SOCKET: the rootless podman engine that builds tenants'
  // Dockerfiles (tools/lib/build_engine.sh), never the engine apps run on.
  std::string engine_socket;
  // C2D_BUILD_ENGINE_CGROUP: the cgroup the build engine runs in; each build
  // gets one below it, with its memory limit, handed to C2D_BUILD_USER.
  std::string engine_cgroup;
  std::string build_user = "c2d-build";  // C2D_BUILD_USER
  std::string registry_url;              // C2D_REGISTRY_URL, e.g. http://127.0.0.1:5000
  std::string registry_user;             // C2D_REGISTRY_USER
  std::string registry_password;         // C2D_REGISTRY_PASSWORD
  std::string work_dir;                  // C2D_BUILD_WORK_DIR: checkouts live here while building
  // C2D_LOCAL_REPO_ROOT: local repositories below it may be built (the
  // bundled sample, tests); empty, the default: only remote URLs.
  std::string local_repo_root;
  std::chrono::milliseconds build_timeout{15 * 60 * 1000};  // C2D_BUILD_TIMEOUT
  std::chrono::milliseconds git_timeout{2 * 60 * 1000};     // C2D_GIT_TIMEOUT
  int64_t build_memory_bytes = int64_t{2} << 30;            // C2D_BUILD_MEMORY_MB (2048)
  int64_t max_image_bytes = int64_t{2} << 30;               // C2D_MAX_IMAGE_BYTES
  int64_t max_context_bytes = int64_t{1} << 30;             // C2D_MAX_CONTEXT_BYTES
  int keep_builds = 10;                                     // C2D_GC_KEEP_BUILDS
  // C2D_MAX_BUILDS_PER_USER: queued and running builds one user may have;
  // StartBuild answers RESOURCE_EXHAUSTED beyond.
  int max_builds_per_user = 5;
  std::chrono::milliseconds gc_interval{60 * 60 * 1000};  // C2D_GC_INTERVAL
  std::optional<crypto::MasterKeys> master_keys;          // C2D_MASTER_KEY
  // The deployer's gRPC address: where a successful build is deployed
  // (unless skip_deploy). Empty: builds are never deployed.
  std::string deployer_addr;  // C2D_DEPLOYER_ADDR
  Stacks stacks;

  // registry_url's host:port, the first part of every image name.
  std::string RegistryHost() const;

  static absl::StatusOr<Config> FromEnv();
};

}  // namespace c2d::builder
