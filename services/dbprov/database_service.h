#pragma once

// c2d.v1.DatabaseService: records databases and their jobs (the work is in
// the provision_db and delete_db jobs), links them to services and resolves
// those links for the deployer (links.cc). Backups, restores and rotation
// answer UNIMPLEMENTED until they exist.

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>

#include "libs/cloud/provider.h"
#include "libs/objstore/objstore.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/dbprov.grpc.pb.h"
#include "services/dbprov/config.h"
#include "services/dbprov/store.h"

namespace c2d::dbprov {

// The request's fields checked and completed with the defaults Database
// documents; InvalidArgument naming the field.
absl::Status ValidateCreate(v1::CreateDatabaseRequest& request);

class DatabaseServiceImpl final : public v1::DatabaseService::Service {
 public:
  DatabaseServiceImpl(pg::Pool& pool, const Config& config, cloud::Provider& provider,
                      objstore::ObjectStore& store)
      : pool_(pool), config_(config), provider_(provider), store_(store) {}

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

  grpc::Status LinkDatabase(grpc::ServerContext* context, const v1::LinkDatabaseRequest* request,
                            v1::DatabaseLink* response) override;
  grpc::Status UnlinkDatabase(grpc::ServerContext* context,
                              const v1::UnlinkDatabaseRequest* request,
                              v1::UnlinkDatabaseResponse* response) override;
  grpc::Status ListLinks(grpc::ServerContext* context, const v1::ListLinksRequest* request,
                         v1::ListLinksResponse* response) override;
  grpc::Status ResolveLinks(grpc::ServerContext* context, const v1::ResolveLinksRequest* request,
                            v1::ResolveLinksResponse* response) override;

  // rotation.cc
  grpc::Status RotateCredentials(grpc::ServerContext* context,
                                 const v1::RotateCredentialsRequest* request,
                                 v1::Database* response) override;

  // backups.cc
  grpc::Status CreateBackup(grpc::ServerContext* context, const v1::CreateBackupRequest* request,
                            v1::Backup* response) override;
  grpc::Status ListBackups(grpc::ServerContext* context, const v1::ListBackupsRequest* request,
                           v1::ListBackupsResponse* response) override;
  grpc::Status GetBackup(grpc::ServerContext* context, const v1::GetBackupRequest* request,
                         v1::Backup* response) override;
  grpc::Status RestoreBackup(grpc::ServerContext* context, const v1::RestoreBackupRequest* request,
                             v1::Database* response) override;

 private:
  // A new database row from a validated request, its passwords sealed.
  absl::StatusOr<DatabaseRow> NewDatabase(const v1::CreateDatabaseRequest& r);
  // Inserts it (AlreadyExists for a name taken) with its provision_db job.
  absl::StatusOr<v1::Database> InsertNew(pg::Tx& tx, const DatabaseRow& row);
  // The restore of `backup` into database `target_id`, marked and enqueued.
  absl::StatusOr<v1::Database> StartRestore(const v1::Backup& backup,
                                            const v1::RestoreBackupRequest& request);
  // One link of a release, resolved (see ResolveLinks).
  absl::StatusOr<v1::ResolvedLink> Resolve(const std::string& service_id,
                                           const v1::DatabaseLinkRef& ref);

  pg::Pool& pool_;
  const Config& config_;
  cloud::Provider& provider_;
  objstore::ObjectStore& store_;
};

// ALREADY_EXISTS: the project already has a database named `name`.
absl::Status NameTaken(const std::string& name);

// A fresh password: 24 random bytes, URL-safe (it goes into URLs as is).
std::string NewPassword();

// Enqueues a dbprov job with `key` as its unique key.
absl::Status EnqueueJob(pg::Tx& tx, const char* kind, const google::protobuf::Message& payload,
                        const std::string& key, int max_attempts = 10);

// The default env prefix of an engine's links: DATABASE (postgres), MYSQL
// (mariadb) or REDIS (redis).
std::string DefaultEnvPrefix(v1::DatabaseEngine engine);

// What a link puts in an app's environment: <P>_URL (so DATABASE_URL with
// the default prefix), <P>_HOST, <P>_PORT, <P>_USER, <P>_PASSWORD, <P>_NAME.
struct Credentials {
  v1::DatabaseEngine engine;
  std::string host;
  int port = 0;
  std::string user, password, name;
};
std::map<std::string, std::string> LinkEnv(const std::string& prefix, const Credentials& c);

// The unique keys of a database's jobs (jobs.proto).
std::string ProvisionJobKey(const std::string& database_id);
std::string DeleteJobKey(const std::string& database_id);
// Enqueues the delete_db job of the database.
absl::Status EnqueueDelete(pg::Tx& tx, const std::string& database_id);

}  // namespace c2d::dbprov
