#include "libs/rpc/status.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "proto/c2d/v1/common.pb.h"

namespace c2d::rpc {
namespace {

constexpr absl::string_view kFieldPayload = "type.c2d.dev/field";

}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  v1::StatusDetails details;
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    (*details.mutable_payloads())[std::string(url)] = std::string(payload);
  });
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      details.payloads().empty() ? "" : details.SerializeAsString());
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status s(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  v1::StatusDetails details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const auto& [url, payload] : details.payloads()) s.SetPayload(url, absl::Cord(payload));
  }
  return s;
}

absl::Status InvalidField(absl::string_view field, absl::string_view why) {
  absl::Status s = absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
  s.SetPayload(kFieldPayload, absl::Cord(field));
  return s;
}

std::optional<std::string> ErrorField(const absl::Status& status) {
  if (auto field = status.GetPayload(kFieldPayload)) return std::string(*field);
  return std::nullopt;
}

}  // namespace c2d::rpc
