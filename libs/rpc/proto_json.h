#pragma once

// The one encoding of protobuf messages stored as JSON (job payloads, spec
// columns): proto3 JSON with the proto's snake_case field names. Readers
// ignore unknown fields, so an older process reads what a newer one wrote.

#include <google/protobuf/message.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::rpc {

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message);

// InvalidArgument naming the message type when `json` does not parse as it.
absl::Status FromJson(absl::string_view json, google::protobuf::Message* message);

}  // namespace c2d::rpc
