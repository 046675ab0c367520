#include "libs/dns/client.h"

#include "libs/rpc/status.h"

namespace c2d::dns {
namespace {

// A DNS service call: one transaction and one PowerDNS request.
constexpr auto kTimeout = std::chrono::seconds(10);

template <typename Response, typename Call>
absl::StatusOr<Response> Run(Call call) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kTimeout);
  Response response;
  grpc::Status s = call(&ctx, &response);
  if (!s.ok()) return rpc::FromGrpc(s);
  return response;
}

}  // namespace

absl::StatusOr<v1::UpsertRecordsResponse> Client::Upsert(const v1::UpsertRecordsRequest& request) {
  return Run<v1::UpsertRecordsResponse>(
      [&](grpc::ClientContext* ctx, auto* out) { return stub_->UpsertRecords(ctx, request, out); });
}

absl::StatusOr<v1::DeleteRecordsResponse> Client::Delete(const v1::DeleteRecordsRequest& request) {
  return Run<v1::DeleteRecordsResponse>(
      [&](grpc::ClientContext* ctx, auto* out) { return stub_->DeleteRecords(ctx, request, out); });
}

absl::StatusOr<v1::ListRecordsResponse> Client::List(const v1::ListRecordsRequest& request) {
  return Run<v1::ListRecordsResponse>(
      [&](grpc::ClientContext* ctx, auto* out) { return stub_->ListRecords(ctx, request, out); });
}

}  // namespace c2d::dns
