#pragma once

// Request validation shared by the c2d.v1 services (the conventions of
// proto/c2d/v1/common.proto): field errors, names, pages.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/rpc/status.h"  // InvalidField
#include "proto/c2d/v1/common.pb.h"

namespace c2d::rpc {

// Names of projects, services, databases and volumes: a DNS label (RFC
// 1123) of at most 39 characters that is no IDNA A-label: lower-case
// letters, digits and hyphens, starting with a letter, ending with a letter
// or digit, without "--" at positions 3-4 ("xn--"). They become hostnames
// and registry paths.
bool ValidName(absl::string_view name);
inline constexpr char kNameRule[] =
    "must be 1-39 lower-case letters, digits and hyphens, start with a letter, end with a "
    "letter or digit, and not have \"--\" at positions 3-4";

// The page size a List RPC uses: 0 = 50, at most 200; negative is invalid.
absl::StatusOr<int> PageSize(const v1::PageRequest& page);

// An absolute path inside a container: not "/", no "..", at most 1024 chars.
bool ValidMountPath(absl::string_view path);

// A full commit id: 40 or 64 lower-case hex characters.
bool IsCommitSha(absl::string_view s);

// Where code comes from: repository URL (see repo_url.h; local paths only
// below `local_repo_root`, none when it is empty), branch (git's rules),
// commit (full id or empty), root_dir (plain relative path). Field names
// start with `prefix`.
absl::Status ValidateSource(const v1::Source& source, absl::string_view prefix,
                            absl::string_view local_repo_root);
// dockerfile_path a plain relative path not ending in ".in", build_command at
// most 4 KiB.
absl::Status ValidateBuildSettings(const v1::BuildSettings& settings, absl::string_view prefix);
// A database link's env prefix: ^[A-Z][A-Z0-9_]{0,31}$ (DATABASE, REDIS, …).
bool ValidEnvPrefix(const std::string& prefix);
// A release's configuration as the deployer runs it: ids and names, type,
// run settings (instance_count 1-20, exactly 1 with volumes), the health
// check of a web service, env var keys, volume mounts. Fields are named
// "spec.<path>".
absl::Status ValidateServiceSpec(const v1::ServiceSpec& spec);

}  // namespace c2d::rpc
