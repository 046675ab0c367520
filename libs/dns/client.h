#pragma once

// Calls to the DNS service (services/dns), the one owner of c2d's DNS
// records, for the services that publish names (deployer, dbprov, certs):
// each call has a deadline, and gRPC errors come back as absl::Status
// (rpc::FromGrpc). Thread-safe.

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/statusor.h"
#include "proto/c2d/v1/dns.grpc.pb.h"

namespace c2d::dns {

class Client {
 public:
  explicit Client(std::shared_ptr<grpc::Channel> channel)
      : stub_(v1::DnsService::NewStub(std::move(channel))) {}

  absl::StatusOr<v1::UpsertRecordsResponse> Upsert(const v1::UpsertRecordsRequest& request);
  absl::StatusOr<v1::DeleteRecordsResponse> Delete(const v1::DeleteRecordsRequest& request);
  absl::StatusOr<v1::ListRecordsResponse> List(const v1::ListRecordsRequest& request);

 private:
  std::unique_ptr<v1::DnsService::Stub> stub_;
};

}  // namespace c2d::dns
