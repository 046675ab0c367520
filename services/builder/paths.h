#pragma once

// Paths a tenant names inside a checkout (root_dir, dockerfile_path, the
// files detection reads), resolved as the kernel resolves them, symlinks
// followed, and refused when the result leaves the checkout: a repository
// may hold `app -> /etc`, and the builder runs with rights the tenant has
// not. Checked with realpath(3), never by looking at the strings.

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::builder {

enum class PathKind { kDirectory, kRegularFile };

// `rel` below `root`, resolved: an absolute path inside realpath(root) (or
// root itself for an empty `rel`). NotFound when it does not exist or is not
// of `kind`; PermissionDenied when it leads outside `root`. `what` names it
// in messages ("root_dir", "dockerfile_path").
absl::StatusOr<std::filesystem::path> ResolveInside(const std::filesystem::path& root,
                                                    absl::string_view rel, PathKind kind,
                                                    absl::string_view what);

// The content of regular file `rel` below `root` (resolved as above), at
// most `max_bytes`; "" when there is no such file inside `root`.
std::string ReadInside(const std::filesystem::path& root, absl::string_view rel,
                       int64_t max_bytes = 1 << 20);

}  // namespace c2d::builder
