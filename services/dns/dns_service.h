#pragma once

// c2d.v1.DnsService: the one owner of every record c2d publishes. Records
// are committed to PostgreSQL with their zone's `dns_sync` job, then pushed
// to the backend before the call answers (UpsertRecordsResponse.synced).

#include <grpcpp/grpcpp.h>

#include "libs/pg/pool.h"
#include "proto/c2d/v1/dns.grpc.pb.h"
#include "services/dns/sync.h"

namespace c2d::dns {

class DnsServiceImpl final : public v1::DnsService::Service {
 public:
  DnsServiceImpl(pg::Pool& pool, Syncer& syncer) : pool_(pool), syncer_(syncer) {}

  grpc::Status UpsertRecords(grpc::ServerContext* context, const v1::UpsertRecordsRequest* request,
                             v1::UpsertRecordsResponse* response) override;
  grpc::Status DeleteRecords(grpc::ServerContext* context, const v1::DeleteRecordsRequest* request,
                             v1::DeleteRecordsResponse* response) override;
  grpc::Status ListRecords(grpc::ServerContext* context, const v1::ListRecordsRequest* request,
                           v1::ListRecordsResponse* response) override;
  grpc::Status GetZone(grpc::ServerContext* context, const v1::GetZoneRequest* request,
                       v1::Zone* response) override;
  grpc::Status ListZones(grpc::ServerContext* context, const v1::ListZonesRequest* request,
                         v1::ListZonesResponse* response) override;

 private:
  // The record sets each zone had changed, by zone id.
  using Touched = std::map<std::string, std::vector<std::pair<std::string, v1::RecordType>>>;

  // Writes the validated records in one transaction (see UpsertRecords).
  absl::Status Write(std::vector<v1::Record>& records, Touched& touched);
  // Pushes what changed; false when a push failed (the jobs will retry).
  bool PushAll(const Touched& touched);

  pg::Pool& pool_;
  Syncer& syncer_;
};

}  // namespace c2d::dns
