#pragma once

// Zero-downtime credential rotation (DESIGN point 25), as the dbprov job
// rotate_db of named, idempotent steps. Each database has two login roles
// (<base>_a, <base>_b) in one owner group; links use the active one.
//   Prepare: a fresh password on the idle role, enabled beside the active
//            one; links switched to it (from now on a deploy resolves it).
//   Redeploy: every linked service with a live release gets a new release
//            of it (the deployer's zero-downtime flow; its request id is the
//            job's, so a run after a crash finds the same releases).
//   Wait:    until each is live (or superseded by a newer deploy, which
//            resolved the new role too) and the instances it replaced,
//            which use the old role, have drained and stopped, within
//            C2D_ROTATION_TIMEOUT.
//   Retire:  only then the old role gets a password nobody knows and
//            NOLOGIN, and its sessions end.
// A release that does not go live stops the rotation with both roles
// enabled (the old release still serves on the old one) and failure_reason
// saying which; rotating again, once it deploys, finishes the retirement.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "libs/jobs/job.h"
#include "libs/jobs/worker.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/deployer.grpc.pb.h"
#include "services/dbprov/config.h"
#include "services/dbprov/provision_job.h"
#include "services/dbprov/store.h"

namespace c2d::dbprov {

// available -> rotating, and the rotate_db job enqueued; false when the
// database was not available.
absl::StatusOr<bool> StartRotation(pg::Tx& tx, const std::string& database_id);

class Rotations {
 public:
  // `deployer` may be null: a database with linked services then cannot
  // rotate (the rotation stops and says so).
  Rotations(pg::Pool& pool, const Config& config, Servers& servers,
            const std::shared_ptr<grpc::Channel>& deployer);

  // Registers rotate_db on a "dbprov" worker.
  void RegisterJobs(jobs::Worker& worker);
  absl::Status Rotate(jobs::JobContext& ctx);
  // The leader's pass: starts the rotations that rotation_days asks for.
  // Returns how many it started.
  int StartDue();

 private:
  absl::Status Prepare(const DatabaseRow& row, const std::string& to);
  // The live services linked to the database, redeployed: their new
  // deployments' ids.
  absl::StatusOr<std::vector<std::string>> Redeploy(const DatabaseRow& row,
                                                    const jobs::JobContext& ctx);
  // OK when every deployment went live or was superseded; FailedPrecondition
  // naming the first that failed.
  absl::Status WaitLive(const std::vector<std::string>& deployments, const jobs::JobContext& ctx);
  // Until the service runs no instance of the release `d` replaced.
  absl::Status WaitDrained(const v1::Deployment& d, absl::Time deadline,
                           const jobs::JobContext& ctx);
  absl::Status Retire(const DatabaseRow& row, const std::string& from);
  // The server's roles brought to what the row says.
  absl::Status Converge(const std::string& database_id);
  absl::Status Converge(const DatabaseRow& row);
  absl::StatusOr<DatabaseRow> Load(const std::string& id);

  pg::Pool& pool_;
  const Config& config_;
  Servers& servers_;
  std::unique_ptr<v1::DeployerService::Stub> deployer_;
};

std::string RotateJobKey(const std::string& database_id);

}  // namespace c2d::dbprov
