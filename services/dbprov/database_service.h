#pragma once

// c2d.v1.DatabaseService: records databases and their jobs (the work is in
// the provision_db and delete_db jobs). Links, backups, restores and
// rotation answer UNIMPLEMENTED until they exist.

#include <grpcpp/grpcpp.h>

#include "libs/pg/pool.h"
#include "proto/c2d/v1/dbprov.grpc.pb.h"
#include "services/dbprov/config.h"

namespace c2d::dbprov {

// The request's fields checked and completed with the defaults Database
// documents; InvalidArgument naming the field.
absl::Status ValidateCreate(v1::CreateDatabaseRequest& request);

class DatabaseServiceImpl final : public v1::DatabaseService::Service {
 public:
  DatabaseServiceImpl(pg::Pool& pool, const Config& config) : pool_(pool), config_(config) {}

  grpc::Status CreateDatabase(grpc::ServerContext* context,
                              const v1::CreateDatabaseRequest* request,
                              v1::Database* response) override;
  grpc::Status GetDatabase(grpc::ServerContext* context, const v1::GetDatabaseRequest* request,
                           v1::Database* response) override;
  grpc::Status ListDatabases(grpc::ServerContext* context, const v1::ListDatabasesRequest* request,
                             v1::ListDatabasesResponse* response) override;
  grpc::Status DeleteDatabase(grpc::ServerContext* context,
                              const v1::DeleteDatabaseRequest* request,
                              v1::Database* response) override;

 private:
  pg::Pool& pool_;
  const Config& config_;
};

// The unique keys of a database's jobs (jobs.proto).
std::string ProvisionJobKey(const std::string& database_id);
std::string DeleteJobKey(const std::string& database_id);

}  // namespace c2d::dbprov
