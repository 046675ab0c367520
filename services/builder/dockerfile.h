#pragma once

// The Dockerfile constructs a tenant may not use, because on the build
// engine (rootless podman 4.3.1, buildah 1.28) they reach past the build's
// sandbox:
// - `RUN --mount=type=bind` and `type=cache`: a bind mount from another stage
//   follows symlinks on the host (CVE-2024-1753, unfixed there), and cache
//   mounts are shared by every build on the engine (one tenant reads and
//   poisons another's).
// - `ADD <url>` (http(s), git): the engine fetches it from the host's network,
//   where this machine's loopback services listen.
// - Variables in ADD sources and mount options, which would hide either.
// The same applies to the instruction inside ONBUILD. `RUN --mount` of type
// tmpfs or secret, COPY, and everything else are allowed.

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace c2d::builder {

// OK, or FailedPrecondition naming the line and what to do instead.
absl::Status CheckDockerfile(absl::string_view text);

}  // namespace c2d::builder
