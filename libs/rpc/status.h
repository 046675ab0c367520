#pragma once

// The one mapping between absl::Status and grpc::Status, both ways. Codes
// share numbering, so the mapping is exact; messages pass through.

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace c2d::rpc {

grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace c2d::rpc
