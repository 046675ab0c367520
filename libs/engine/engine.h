#pragma once

// A client for the Docker Engine API (v1.41) over a unix socket: podman's
// `podman system service` by default, Docker Engine where a host has it.
// Builds, tags, pushes and pulls images, and runs containers. Every call has
// a deadline; long streams (build, push, pull, logs) report their lines as
// they arrive and can be cancelled. Engine errors become absl::Status with
// the engine's own message. Thread-safe (no shared mutable state).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace c2d::engine {

// Credentials for one registry, sent as X-Registry-Auth.
struct RegistryAuth {
  std::string username;
  std::string password;
  std::string server;  // host:port
};

// Receives one human-readable progress line at a time.
using LogFn = std::function<void(absl::string_view line)>;

struct BuildOptions {
  std::string tag;                        // repo:tag for the result
  std::string dockerfile = "Dockerfile";  // path inside the context
  int64_t memory_bytes = 0;               // memory cap of build steps; 0 = engine default
  std::map<std::string, std::string> build_args;
  std::map<std::string, std::string> labels;
  // Credentials for registries that FROM images come from.
  std::vector<RegistryAuth> registries;
  // Runs the build's steps in this cgroup (see cgroup.h); empty = the engine's.
  std::string cgroup_parent;
  // RUN steps in a network namespace of their own with user-mode networking
  // (slirp4netns), through podman's libpod API: needs a rootless podman
  // engine. Without it, podman runs RUN steps in the engine's own network
  // namespace. Untrusted Dockerfiles must be built sandboxed, with no
  // memory_bytes (a rootless runtime cannot set it: PrepareCgroup does).
  bool sandboxed = false;
  // Pull every FROM image from its registry, even one the engine holds, so
  // that the registry judges `registries`' credentials for each build (an
  // image another build left on the engine is not theirs to use).
  bool always_pull = false;
  std::chrono::milliseconds timeout{15 * 60 * 1000};
  const std::atomic<bool>* cancel = nullptr;
  LogFn on_log;
};

struct ImageInfo {
  std::string id;  // sha256:…
  int64_t size_bytes = 0;
  std::vector<std::string> repo_digests;  // repo@sha256:…
};

struct PortBinding {
  int container_port = 0;
  std::string host_ip = "127.0.0.1";
  int host_port = 0;  // 0 = the engine picks one
};

struct ContainerSpec {
  std::string name;              // optional; must be unique on the engine
  std::string image;             // repo@sha256:… (or any reference the engine knows)
  std::vector<std::string> cmd;  // empty = the image's CMD
  std::vector<std::string> env;  // KEY=value
  std::map<std::string, std::string> labels;
  std::vector<PortBinding> ports;
  std::vector<std::string> binds;  // host:container[:ro]
  int64_t memory_bytes = 0;
  int64_t nano_cpus = 0;  // 1e9 = one core
  std::string network;    // the network to attach to; empty: the engine's default
  // A fixed IPv4 address on `network` (in its subnet); empty: the engine's pick.
  std::string ipv4_address;
  std::vector<std::string> extra_hosts;  // "name:address" lines added to /etc/hosts
};

// A bridge network of its own (podman's compatible API isolates each one it
// makes from every other isolated network).
struct NetworkSpec {
  std::string name;
  std::string subnet;   // e.g. 10.130.7.0/24
  std::string gateway;  // e.g. 10.130.7.1
  std::string bridge;   // the host's bridge device, at most 15 characters
  int mtu = 0;          // 0: the engine's default
  std::map<std::string, std::string> labels;
};

struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;
  std::string status;  // created, running, exited, …
  bool running = false;
  int exit_code = 0;
  bool oom_killed = false;
  std::optional<absl::Time> started_at;
  std::optional<absl::Time> finished_at;
  std::map<std::string, std::string> labels;
  std::map<int, int> host_ports;  // container port → host port (tcp)
  // network name → the container's IPv4 address on it (while running).
  std::map<std::string, std::string> addresses;
};

struct LogLine {
  bool stderr = false;
  std::string text;  // without the trailing newline
  // When the engine received it; unset if the engine did not say.
  std::optional<absl::Time> time;
};

class Engine {
 public:
  // `socket` is the API's unix socket path.
  explicit Engine(std::string socket,
                  std::chrono::milliseconds call_timeout = std::chrono::seconds(30));

  absl::Status Ping() const;

  // Builds a tar of the build context, streamed from `read_context` (see
  // http::Request::body_reader) as the engine takes it: `context_size` bytes.
  // Returns the image id. A failing step yields FailedPrecondition with the
  // engine's message (the whole output went to on_log);
  // DeadlineExceeded/Cancelled otherwise. Output lines reach on_log whole: a
  // line written in pieces is held until it ends (or reaches 64 KiB), so a
  // value printed in two writes is still one line to redact.
  absl::StatusOr<std::string> Build(
      const std::function<absl::StatusOr<size_t>(char*, size_t)>& read_context,
      int64_t context_size, const BuildOptions& options) const;
  // The same with the whole tar in memory (small contexts).
  absl::StatusOr<std::string> Build(const std::string& context_tar,
                                    const BuildOptions& options) const;
  absl::Status Tag(const std::string& image, const std::string& repo, const std::string& tag) const;
  absl::Status Push(const std::string& repo, const std::string& tag, const RegistryAuth& auth,
                    const LogFn& on_log, std::chrono::milliseconds timeout,
                    const std::atomic<bool>* cancel = nullptr) const;
  // `reference` is repo@sha256:… or repo:tag.
  absl::Status Pull(const std::string& reference, const RegistryAuth& auth,
                    std::chrono::milliseconds timeout) const;
  absl::StatusOr<ImageInfo> InspectImage(const std::string& reference) const;
  absl::Status RemoveImage(const std::string& reference, bool force) const;

  // Errors as the engine gives them; creating an existing name fails (check
  // with NetworkExists first).
  absl::Status CreateNetwork(const NetworkSpec& spec) const;
  absl::StatusOr<bool> NetworkExists(const std::string& name) const;
  // The network's IPv4 subnet ("10.130.7.0/24"); NotFound without the network.
  absl::StatusOr<std::string> NetworkSubnet(const std::string& name) const;
  // NotFound when there is no such network; fails while containers use it.
  absl::Status RemoveNetwork(const std::string& name) const;

  // Returns the container id.
  absl::StatusOr<std::string> CreateContainer(const ContainerSpec& spec) const;
  // NotFound when there is no such container (any more).
  absl::Status StartContainer(const std::string& id) const;
  // SIGTERM, then SIGKILL after `grace`. Stopping a stopped container is OK;
  // NotFound when there is no such container (any more).
  absl::Status StopContainer(const std::string& id, std::chrono::seconds grace) const;
  // NotFound when there is no such container (any more).
  absl::Status RemoveContainer(const std::string& id, bool force) const;
  absl::StatusOr<ContainerInfo> InspectContainer(const std::string& id) const;
  // Containers (running or not) carrying every label of `labels` and, when
  // `network` is set, attached to that network.
  absl::StatusOr<std::vector<ContainerInfo>> ListContainers(
      const std::map<std::string, std::string>& labels, const std::string& network = "") const;
  // Waits until the container stops; returns its exit code.
  absl::StatusOr<int> WaitContainer(const std::string& id, std::chrono::milliseconds timeout) const;
  // Log lines from `since` on; with `follow`, until the container stops,
  // `cancel` is set, or on_line returns false.
  absl::Status Logs(const std::string& id, bool follow, std::optional<absl::Time> since,
                    const std::function<bool(const LogLine&)>& on_line,
                    const std::atomic<bool>* cancel = nullptr) const;

 private:
  std::string Url(absl::string_view path) const;
  // A transport failure (Unavailable) named as the engine being unreachable.
  absl::Status Unreachable(const absl::Status& transport) const;
  // One request with a whole JSON (or empty) body; an answer outside 2xx
  // (and `also_ok`) becomes an error that starts with `what`.
  absl::StatusOr<std::string> Call(const std::string& method, const std::string& path,
                                   const std::string& what, const std::string& body = "",
                                   std::chrono::milliseconds timeout = {}, long also_ok = 0) const;
  // `s`, or NotFound when it failed because the container `id` went away
  // during the call.
  absl::Status GoneMeanwhile(const std::string& id, absl::Status s) const;

  const std::string socket_;
  const std::chrono::milliseconds call_timeout_;
};

}  // namespace c2d::engine
