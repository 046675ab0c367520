#pragma once

// Request validation shared by the c2d.v1 services (the conventions of
// proto/c2d/v1/common.proto): field errors, names, pages.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/c2d/v1/common.pb.h"

namespace c2d::rpc {

// INVALID_ARGUMENT "<field>: <why>".
absl::Status InvalidField(absl::string_view field, absl::string_view why);

// Names of projects, services, databases and volumes: ^[a-z][a-z0-9-]{0,38}$.
bool ValidName(absl::string_view name);
inline constexpr char kNameRule[] = "must match ^[a-z][a-z0-9-]{0,38}$";

// The page size a List RPC uses: 0 = 50, at most 200; negative is invalid.
absl::StatusOr<int> PageSize(const v1::PageRequest& page);

}  // namespace c2d::rpc
