#pragma once

// The `local` provider: each instance is a container on the container
// engine (podman's Docker API by default), pulled by digest through c2d's
// registry credentials, published on a free 127.0.0.1 port (the engine picks
// it), with PORT set, memory and CPU limits, and its labels. A volume is a
// directory under `volumes_dir`, bind-mounted at its mount path. A network is
// an engine bridge network with its own /24 in 10.128.0.0/10 (c2d's container
// networks), isolated from every other isolated network of the engine. An
// instance made with stable_address gets a fixed IP from the top of its
// network's /24 (recorded in the label c2d.address); /etc/hosts lines come
// as the engine's ExtraHosts.

#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/cloud/provider.h"
#include "libs/engine/engine.h"
#include "libs/oci/registry.h"

namespace c2d::cloud {

struct LocalOptions {
  std::string engine_socket;
  engine::RegistryAuth registry;  // for pulls
  // When set (oci::GrantKey of the platform's registry password), each pull
  // uses a grant for that one repository instead of `registry`'s password.
  std::string grant_key;
  std::string volumes_dir;
  std::chrono::milliseconds pull_timeout{5 * 60 * 1000};
};

// A project's private network (one per project; apps and databases join it).
std::string ProjectNetwork(const std::string& project_id);
// A c2d id as a provider resource name (volumes and containers take DNS
// labels): lower case, "_" as "-" ("vol_01JD…" -> "vol-01jd…").
std::string ResourceName(const std::string& id);

// What every process that runs instances reads: C2D_ENGINE_SOCKET,
// C2D_REGISTRY_URL (http(s)://host:port), C2D_REGISTRY_USER,
// C2D_REGISTRY_PASSWORD and C2D_VOLUMES_DIR (default $TMPDIR/c2d-volumes).
struct LocalEnv {
  LocalOptions local;
  oci::RegistryOptions registry;
  // registry.url's host:port, where images come from.
  std::string registry_host;

  static absl::StatusOr<LocalEnv> FromEnv();
};
// The host:port of a registry URL.
std::string RegistryHost(const std::string& url);

class LocalProvider final : public Provider {
 public:
  explicit LocalProvider(LocalOptions options);

  absl::StatusOr<Instance> Create(const InstanceSpec& spec) override;
  absl::Status Start(const std::string& ref) override;
  absl::Status Stop(const std::string& ref, std::chrono::seconds grace) override;
  absl::Status Remove(const std::string& ref) override;
  absl::StatusOr<Instance> Inspect(const std::string& ref) override;
  absl::StatusOr<std::vector<Instance>> List(
      const std::map<std::string, std::string>& labels) override;
  absl::Status DeleteVolume(const std::string& volume) override;
  absl::Status WriteVolumeFile(const std::string& volume, const std::string& name,
                               const std::string& source) override;
  absl::Status EnsureNetwork(const std::string& network) override;
  absl::Status RemoveNetwork(const std::string& network) override;
  absl::Status FollowLogs(const std::string& ref, std::optional<absl::Time> since,
                          const std::function<bool(const LogLine&)>& on_line,
                          const std::atomic<bool>* cancel) override;

  // The directory that backs `volume` (created on first use).
  absl::StatusOr<std::string> VolumePath(const std::string& volume) const;

 private:
  static Instance FromContainer(const engine::ContainerInfo& c);
  // An address of `network`'s fixed range that no container on it holds or
  // has been given.
  absl::StatusOr<std::string> FreeFixedAddress(const std::string& network, const std::string& name);

  const LocalOptions options_;
  engine::Engine engine_;
  absl::Mutex mu_;
  // Networks this provider made or found, so that creating an instance asks
  // the engine nothing more; forgotten when removed, or when a create on one
  // fails (someone else may have removed it).
  std::set<std::string> networks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace c2d::cloud
