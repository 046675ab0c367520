#pragma once

// Compute providers (DESIGN §4): where a service's instances run. The
// deployer depends on this interface only; `local` runs each instance as a
// container on a container engine, `openstack` (later) as a Nova server.
//
// Every instance carries the labels c2d gives it (c2d.project, c2d.service,
// c2d.deployment, c2d.instance), so that c2d can always rebuild its view of
// what runs from the provider alone (List), after any crash.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace c2d::cloud {

struct VolumeMount {
  std::string volume;      // the volume's name (a directory of the provider's)
  std::string mount_path;  // absolute path inside the instance
};

struct InstanceSpec {
  std::string name;                  // unique per provider
  std::string image;                 // repository@sha256:…, pulled by the provider if missing
  std::vector<std::string> command;  // empty: the image's own
  std::map<std::string, std::string> env;  // PORT is set by the provider for web instances
  int port = 0;                            // the app's port; 0 for workers
  int64_t memory_bytes = 0;
  int cpu_millis = 0;
  std::vector<VolumeMount> volumes;
  std::map<std::string, std::string> labels;
  // The private network to join (EnsureNetwork first); empty: the provider's
  // default.
  std::string network;
  // One private address on `network` for the instance's whole life, across
  // restarts (a database server: apps name it in /etc/hosts). Otherwise the
  // address may change whenever the instance starts.
  bool stable_address = false;
  // Extra name → address lines of the instance's /etc/hosts.
  std::map<std::string, std::string> hosts;
  // A database server: `port` serves the project's apps and c2d on the
  // private network only, never the public (no ingress, no public address).
  bool database = false;
};

// kStopping: the provider is stopping or removing it (a passing state; look
// again later rather than start it).
enum class InstanceState { kCreated, kRunning, kStopping, kExited };

struct Instance {
  std::string ref;  // the provider's id
  std::string name;
  InstanceState state = InstanceState::kCreated;
  int exit_code = 0;
  bool oom_killed = false;
  // Where the app answers (host:port), once running; empty for workers.
  std::string address;
  // Its address on its private network (no port): a stable one from the
  // start, any other while running.
  std::string private_address;
  std::map<std::string, std::string> labels;
  std::optional<absl::Time> started_at;
  std::optional<absl::Time> finished_at;
};

struct LogLine {
  bool stderr = false;
  std::string text;
  std::optional<absl::Time> time;  // when the provider received it, if known
};

// A certificate an instance serves itself: its chain (leaf first) and its
// key, PEM.
struct ServedCertificate {
  std::string chain_pem;
  std::string key_pem;
};

// A file name WriteVolumeFile takes: one path component of letters,
// digits, '.', '_' and '-', starting with a letter or a digit, at most 128
// characters.
inline bool IsVolumeFileName(absl::string_view name) {
  if (name.empty() || name.size() > 128 || !absl::ascii_isalnum(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

class Provider {
 public:
  virtual ~Provider() = default;

  // Makes the instance (image pulled, volumes attached) without starting it.
  virtual absl::StatusOr<Instance> Create(const InstanceSpec& spec) = 0;
  virtual absl::Status Start(const std::string& ref) = 0;
  // SIGTERM, then SIGKILL after `grace`. Stopping a stopped instance is OK.
  virtual absl::Status Stop(const std::string& ref, std::chrono::seconds grace) = 0;
  // NotFound when it is already gone.
  virtual absl::Status Remove(const std::string& ref) = 0;
  virtual absl::StatusOr<Instance> Inspect(const std::string& ref) = 0;
  // Instances carrying every label in `labels`.
  virtual absl::StatusOr<std::vector<Instance>> List(
      const std::map<std::string, std::string>& labels) = 0;
  // Destroys a volume's data. Deleting one that does not exist is OK.
  virtual absl::Status DeleteVolume(const std::string& volume) = 0;
  // Puts a copy of the local file `source` into the volume (made when
  // missing) as `name` (one path component), readable by any user, for the
  // instance that mounts it next (e.g. a database dump it loads at start).
  // Streams: the file may be large. InvalidArgument unless IsVolumeFileName.
  virtual absl::Status WriteVolumeFile(const std::string& volume, const std::string& name,
                                       const std::string& source) = 0;
  // A private network (one per project): instances on it reach each other
  // and no instance of another network; published ports stay where the
  // provider publishes them. Making one that exists is OK.
  virtual absl::Status EnsureNetwork(const std::string& network) = 0;
  // Removing one that does not exist is OK; fails while instances use it.
  virtual absl::Status RemoveNetwork(const std::string& network) = 0;
  // Output from `since` on, until the instance stops, `cancel` is set, or
  // on_line returns false.
  virtual absl::Status FollowLogs(const std::string& ref, std::optional<absl::Time> since,
                                  const std::function<bool(const LogLine&)>& on_line,
                                  const std::atomic<bool>* cancel) = 0;
  // True when a volume attaches to one instance at a time (a Cinder
  // volume): a release of a service with volumes then stops the instance
  // holding them before it starts its own (a short downtime). False: the old
  // and the new instance share the volume while one replaces the other
  // (local: a directory).
  virtual bool VolumesAttachOnce() const { return false; }
  // Replaces every certificate a web instance serves (picked by SNI), for
  // providers whose instances terminate TLS themselves (openstack: each
  // server's own Caddy, DESIGN §1 point 2). Unimplemented: the instances
  // serve plain HTTP behind c2d's ingress, which holds the certificates
  // (local).
  virtual absl::Status ServeCertificates(const std::string& ref,
                                         const std::vector<ServedCertificate>& certs) {
    (void)ref;
    (void)certs;
    return absl::UnimplementedError("this provider's instances do not terminate TLS");
  }
};

}  // namespace c2d::cloud
