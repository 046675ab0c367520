#pragma once

// The `deploy` job (queue deployer): from a PENDING deployment to a LIVE one
// with zero downtime, or to FAILED with the previous deployment untouched.
//
//   (stop-first: a service with volumes on a provider whose volumes attach
//    to one instance at a time: the live release is retired and its
//    instances stopped first; should this one fail, a rollback to the
//    retired one is deployed)
//   -> start instance_count instances (env resolved, image pinned by digest)
//   -> health-gate every one of them (DESIGN point 11)
//   -> instances that terminate TLS get their certificates
//   -> switch in one transaction: old live -> superseded / rolled_back and
//      its instances -> draining, this one -> live
//   -> point the ingress at the new instances
//   -> (the reconciler stops the old instances after the drain grace).
//
// Idempotent: each step reads what earlier attempts left (instance rows,
// containers found by label), so a re-run after a crash carries on; the
// switch is one transaction and the ingress is always derived from it, so a
// crash can never leave a service half-switched. A deployment superseded
// while it runs stops at its next step; the reconciler removes its instances.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/jobs/job.h"
#include "services/deployer/runtime.h"

namespace c2d::deployer {

class DeployJob {
 public:
  explicit DeployJob(Runtime& runtime) : runtime_(runtime) {}

  // When the last attempt meets trouble that would otherwise be retried
  // (engine or registry down), the deployment fails with that reason: no
  // deployment stays DEPLOYING after its job has ended.
  absl::Status Run(jobs::JobContext& ctx);

 private:
  // A step's end: nullopt to carry on, else what the attempt returns (to be
  // retried, or the deployment ended by Fail).
  using Stop = std::optional<absl::Status>;
  struct Gate;  // an instance going through the health gate

  absl::Status Attempt(jobs::JobContext& ctx, const std::string& id);
  // Attempt's steps, in order.
  Stop StopPrevious(jobs::JobContext& ctx, const v1::Deployment& d);
  Stop StartInstances(jobs::JobContext& ctx, const v1::Deployment& d, const ReleaseEnv& env,
                      std::vector<InstanceRow>& rows);
  // Every instance healthy (web: its health check; worker: running for its
  // start period), or the deployment fails; `refs` gets their provider refs.
  Stop HealthGate(jobs::JobContext& ctx, const v1::Deployment& d,
                  const std::vector<InstanceRow>& rows, std::vector<std::string>& refs);
  // HealthGate's look at one instance not yet healthy.
  Stop CheckGated(const v1::Deployment& d, const v1::HealthCheck& check, absl::Time gate_start,
                  Gate& g);
  void GiveCertificates(const v1::Deployment& d, const std::vector<std::string>& refs);
  absl::Status Switch(const v1::Deployment& d);
  // Records the failure and stops the deployment's instances; brings back
  // the release a stop-first deploy retired.
  absl::Status Fail(const v1::Deployment& d, const std::string& reason);

  Runtime& runtime_;
};

// The `stop` job: StopService's work. Every deployment of the service ends
// (live -> stopped), the hostname leaves the ingress, the instances drain and
// stop; volumes are deleted when asked.
class StopJob {
 public:
  explicit StopJob(Runtime& runtime) : runtime_(runtime) {}
  absl::Status Run(jobs::JobContext& ctx);

 private:
  Runtime& runtime_;
};

}  // namespace c2d::deployer
