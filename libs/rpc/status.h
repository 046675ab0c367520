#pragma once

// The one mapping between absl::Status and grpc::Status, both ways. Codes
// share numbering, so the mapping is exact; messages pass through, and so
// do payloads (as the gRPC status details, a c2d.v1.StatusDetails): what an
// error means travels in its code and payloads, never in its wording.

#include <grpcpp/support/status.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace c2d::rpc {

grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

// InvalidArgument "<field>: <why>", the field also as a payload.
absl::Status InvalidField(absl::string_view field, absl::string_view why);
// The field an InvalidField error names (also one from another service).
std::optional<std::string> ErrorField(const absl::Status& status);

}  // namespace c2d::rpc
