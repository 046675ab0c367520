#pragma once

// Stopping what a build left running. Podman's Docker-compatible /build keeps
// running its RUN steps after the client disconnects, so a cancelled or
// timed-out build would go on in the background. Each build therefore runs
// with its own cgroup parent (BuildOptions::cgroup_parent), and the builder
// kills whatever is left in that cgroup when the build ends, then removes it.
// This works where the engine runs on the builder's host (the local provider).

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace c2d::engine {

// Kills (SIGKILL) every process in the cgroup `name` (e.g. "/c2d-build-x")
// and below, in every mounted hierarchy, then removes the cgroup
// directories. Returns how many processes it killed through `killed`.
// DeadlineExceeded if processes remain after `timeout`.
absl::Status KillCgroup(const std::string& name, std::chrono::milliseconds timeout, int* killed);

}  // namespace c2d::engine
