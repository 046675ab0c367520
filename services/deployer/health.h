#pragma once

// Health checks of instances (DESIGN §1 point 11).
//
// Probe: one check of one instance. With a path, an HTTP GET that passes on
// any 2xx or 3xx answer within timeout_s; without (""), a TCP connect.
//
// HealthTracker: an instance's health from consecutive probe results. It
// starts Starting; healthy_threshold passes in a row make it Healthy;
// unhealthy_threshold failures in a row make it Unhealthy, except that
// failures during the first start_period_s after the instance started do not
// count (a slow boot is not a failure). A Healthy instance that fails
// unhealthy_threshold times becomes Unhealthy; an Unhealthy one that passes
// healthy_threshold times is Healthy again.

#include <chrono>
#include <string>

#include "absl/time/time.h"
#include "proto/c2d/v1/common.pb.h"

namespace c2d::deployer {

struct ProbeResult {
  bool ok = false;
  absl::Duration latency;
  std::string detail;  // "HTTP 200", "connection refused", "timed out after 2s", …
};

// Probes `address` (host:port) per `check`.
ProbeResult Probe(const std::string& address, const v1::HealthCheck& check);

// The check with DESIGN point 11's defaults filled in where a field is 0
// (path stays as given: "" means TCP).
v1::HealthCheck WithDefaults(v1::HealthCheck check);

// How long a new deployment may take to become healthy before it fails:
// start_period_s + unhealthy_threshold * interval_s.
absl::Duration GateDeadline(const v1::HealthCheck& check);
// A worker (no port, no probe) is up once its process has run this long:
// its health_check.start_period_s (2 s for a spec that has none).
absl::Duration WorkerSettle(const v1::ServiceSpec& spec);

enum class Health { kStarting, kHealthy, kUnhealthy };

class HealthTracker {
 public:
  HealthTracker(const v1::HealthCheck& check, absl::Time started_at)
      : check_(WithDefaults(check)), started_at_(started_at) {}

  // Carries on from persisted counters (a new leader, a re-run job).
  void Restore(Health health, int passes, int failures) {
    health_ = health;
    passes_ = passes;
    failures_ = failures;
  }
  // Records a probe made at `at`; returns the health afterwards.
  Health Record(bool ok, absl::Time at);
  Health health() const { return health_; }
  int consecutive_passes() const { return passes_; }
  int consecutive_failures() const { return failures_; }

 private:
  const v1::HealthCheck check_;
  const absl::Time started_at_;
  Health health_ = Health::kStarting;
  int passes_ = 0;
  int failures_ = 0;
};

}  // namespace c2d::deployer
