#pragma once

// The dbprov jobs that make and unmake a database's server: provision_db
// (a container of the engine's image on the project's network, its data on a
// volume; then the owner group, the two login roles and the database) and
// delete_db. Both are idempotent steps: a job run again after a crash finds
// what the first run made and carries on.

#include <grpcpp/grpcpp.h>

#include <memory>

#include "libs/cloud/provider.h"
#include "libs/dns/client.h"
#include "libs/jobs/job.h"
#include "libs/jobs/worker.h"
#include "libs/oci/registry.h"
#include "libs/pg/pool.h"
#include "services/dbprov/config.h"
#include "services/dbprov/store.h"

namespace c2d::dbprov {

// Labels on a database's server.
inline constexpr char kDatabaseLabel[] = "c2d.database";

class Servers {
 public:
  Servers(pg::Pool& pool, const Config& config, cloud::Provider& provider, oci::Registry& registry)
      : pool_(pool), config_(config), provider_(provider), registry_(registry) {}

  // The DNS service: a database's server gets the name
  // "<database>.<project>.internal.<base>" (an A record of its address on
  // its project's network) before it shows available, until it is deleted.
  // Without it no name is published.
  void UseDns(const std::shared_ptr<grpc::Channel>& dns);

  // Registers provision_db and delete_db on a "dbprov" worker.
  void RegisterJobs(jobs::Worker& worker);
  absl::Status Provision(jobs::JobContext& ctx);
  absl::Status Delete(jobs::JobContext& ctx);

  // A server of the database's engine and plan with `admin` as its
  // administrator's password: image (by digest), env, port, memory.
  absl::StatusOr<cloud::InstanceSpec> StackSpec(const v1::Database& d, const std::string& admin);
  // The database's server, running (made and started when missing).
  absl::StatusOr<cloud::Instance> EnsureServer(const DatabaseRow& row, const std::string& admin);
  // Waits until the server at `address` takes the administrator's
  // connections; DeadlineExceeded after the configured ready_timeout.
  absl::Status WaitReady(v1::DatabaseEngine engine, const std::string& address,
                         const std::string& admin, const jobs::JobContext* ctx);
  // The owner group, the login roles (the active one enabled) and the
  // database, made or brought up to date.
  absl::Status EnsureRoles(const std::string& address, const DatabaseRow& row,
                           const std::string& admin);
  // A libpq connection string for the PostgreSQL server at `address` as the
  // administrator.
  static std::string AdminUrl(const std::string& address, const std::string& admin);

 private:
  // The database a job names; a permanent error when it does not exist.
  absl::StatusOr<DatabaseRow> Load(const std::string& id);
  absl::Status FailIfLast(jobs::JobContext& ctx, const std::string& id, const absl::Status& s);
  // The database's DNS name points at `address`; no address removes it.
  absl::Status PublishName(const DatabaseRow& row, const std::string& address);

  pg::Pool& pool_;
  const Config& config_;
  cloud::Provider& provider_;
  oci::Registry& registry_;
  std::unique_ptr<dns::Client> dns_;  // null without UseDns
};

// Whether login role "a" or "b" may log in: the active one, the retiring
// one (apps not yet redeployed after a rotation use it), and both while a
// rotation runs.
bool MayLogIn(const v1::Database& d, absl::string_view role);

// The prefix of a database's roles (<base>_a, <base>_b, <base>_owner): its
// name, but "pgdb" for a database named "pg" (PostgreSQL reserves "pg_").
std::string RoleBase(const std::string& name);

// The volume and instance name of a database's server: c2d-db-<id, lower case>.
std::string ServerName(const std::string& database_id);

}  // namespace c2d::dbprov
