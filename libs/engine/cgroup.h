#pragma once

// Stopping what a build left running. Podman's Docker-compatible /build keeps
// running its RUN steps after the client disconnects, so a cancelled or
// timed-out build would go on in the background. Each build therefore runs
// with its own cgroup parent (BuildOptions::cgroup_parent), and the builder
// kills whatever is left in that cgroup when the build ends, then removes it.
// This works where the engine runs on the builder's host (the local provider).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace c2d::engine {

// Creates the cgroup `name` (e.g. "/c2d-build-engine-x/c2d-build-y") in
// every mounted hierarchy whose parent exists, sets its memory limit (0:
// none) as root, in files `owner` cannot change, and hands `owner` the
// directory: a rootless engine's runtime may then create (and remove) the
// cgroup of a build step below it, e.g. "<name>/steps", which the limit of
// `name` bounds. A rootless runc on cgroup v1 cannot set limits itself: this
// is how a build on the rootless engine gets one.
absl::Status PrepareCgroup(const std::string& name, uid_t owner, gid_t group, int64_t memory_bytes);

// Whether cgroup `name` has used all the memory its limit allows since it
// was made (v1: peak usage at the limit, or a failed charge; v2: "max" or
// "oom_kill" events, which count its children).
bool ReachedMemoryLimit(const std::string& name);

// Kills (SIGKILL) every process in the cgroup `name` (e.g. "/c2d-build-x")
// and below, in every mounted hierarchy, then removes the cgroup
// directories. Returns how many processes it killed through `killed`.
// DeadlineExceeded if processes remain after `timeout`.
absl::Status KillCgroup(const std::string& name, std::chrono::milliseconds timeout, int* killed);

}  // namespace c2d::engine
