#pragma once

// Self-healing (DESIGN points 11 and 24): the deployer's leader compares,
// every C2D_RECONCILE_INTERVAL, what should run (instances of live
// deployments, in PostgreSQL) with what runs (the provider's containers,
// found by label) and what the health checks see:
//  - a live instance whose container exited is restarted, with exponential
//    backoff (1 s doubling to 5 min); more than 5 restarts in 10 minutes
//    mark it CRASH_LOOP (restarts go on, with the backoff);
//  - one whose container is gone (removed behind c2d's back) is LOST and
//    recreated;
//  - each running one is probed every interval_s (every second while it
//    starts); after unhealthy_threshold failures it leaves rotation and is
//    restarted; once it passes again it is back in rotation;
//  - instances of deployments that ended are stopped (draining ones after
//    the drain grace), and containers no row accounts for are removed;
//  - the ingress of every touched service is brought in line.
// It also runs the runtime-log followers. Everything it knows is in
// PostgreSQL and the provider's labels, so a new leader simply carries on.

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/time/time.h"
#include "services/deployer/health.h"
#include "services/deployer/log_follower.h"
#include "services/deployer/runtime.h"

namespace c2d::deployer {

class Reconciler {
 public:
  explicit Reconciler(Runtime& runtime);

  // One pass: the leader's duty.
  void RunOnce();
  // Stops the log followers (shutdown).
  void Stop() { followers_.StopAll(); }
  // Leadership went to another replica, which follows the logs and exports
  // the instance gauges from now on: stops the followers and removes the
  // gauges' series. On the duty's thread.
  void LostLeadership();

 private:
  // Destroys DELETING volumes that no live or in-progress release mounts
  // and no draining instance of their service may still use.
  void DeleteUnmountedVolumes(const std::vector<InstanceRow>& rows);
  // Adds the services whose custom domains were verified or deleted since
  // their routes were written.
  void AddStaleCustomRoutes(std::set<std::string>& services);
  // The steps of a pass. Each bool says whether the instance's rotation
  // may have changed.
  // An instance of an ended deployment: stopped (true), or left to drain.
  bool Retire(const InstanceRow& row);
  void RemoveOrphans(const std::vector<cloud::Instance>& containers,
                     const std::set<std::string>& known);
  void Housekeeping(const std::vector<InstanceRow>& rows, std::set<std::string>& touched);
  void ExportGauges(std::map<std::string, std::map<std::string, double>>& by_service);
  // Healthy instances that terminate TLS themselves get their service's
  // certificates (cert_push.h).
  void PushCertificates(const std::vector<InstanceRow>& rows);
  // A running web instance whose health check is due this pass.
  struct DueProbe {
    const InstanceRow* row;
    const v1::Deployment* deployment;
    absl::Time started_at;
    v1::HealthCheck check;  // with defaults
    std::string address;
    ProbeResult result;
  };
  // Acts on a live instance that is gone or exited; a running one whose
  // health check is due goes to `due`.
  bool HandleLive(const InstanceRow& row, const cloud::Instance* container,
                  std::vector<DueProbe>& due);
  // Probes the due instances, a few at a time, stores every result in one
  // statement, and acts on those whose health changed (adding their
  // services to `touched`).
  void ProbeDue(std::vector<DueProbe>& due, std::set<std::string>& touched);
  bool ApplyProbe(const DueProbe& probe, const HealthTracker& tracker, Health health);
  // HandleLive's cases: the container is gone, or it exited.
  bool ReplaceLost(const InstanceRow& row, const v1::Deployment& d);
  bool RestartExited(const InstanceRow& row, const cloud::Instance& c, const v1::Deployment& d);
  // Why an instance is restarted: kUnhealthy stops its container first; a
  // container that vanishes while kExited or kUnhealthy restarts it is left
  // to the next pass, which replaces it as lost.
  enum class RestartCause { kLost, kExited, kUnhealthy };
  void Restart(const InstanceRow& row, const v1::Deployment& d, const std::string& reason,
               RestartCause cause);
  // Every live deployment, read at once at the start of a pass.
  void LoadDeployments();
  // From this pass's cache (another read when missing); nullptr when it
  // cannot be read.
  const v1::Deployment* Deployment(const std::string& id);

  Runtime& runtime_;
  LogFollowers followers_;
  int passes_ = 0;
  std::map<std::string, v1::Deployment> deployments_;  // this pass's cache
  std::set<std::string> gauged_;                       // services with instance gauges
};

}  // namespace c2d::deployer
