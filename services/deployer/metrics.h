#pragma once

// The deployer's Prometheus metrics (DESIGN point 17).

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace c2d::deployer {

struct DeployerMetrics {
  // Instances by service (its id) and state, refreshed by the reconciler.
  prometheus::Family<prometheus::Gauge>& instances;
  // By service.
  prometheus::Family<prometheus::Counter>& restarts;
  // Probes by service and result (ok, failed), and their latency.
  prometheus::Family<prometheus::Counter>& health_checks;
  prometheus::Histogram& health_check_seconds;
  // From the deploy job's start to live (or failed), by result.
  prometheus::Family<prometheus::Histogram>& deploy_seconds;
  // Requests through the ingress by service and status class, their
  // duration by service, and those for no service's host (access_log.h).
  prometheus::Family<prometheus::Counter>& app_requests;
  prometheus::Family<prometheus::Histogram>& app_request_seconds;
  prometheus::Counter& ingress_unmatched;
};

DeployerMetrics& Metrics();

// Buckets of c2d_app_request_duration_seconds: 5 ms to 10 s.
const prometheus::Histogram::BucketBoundaries& AppRequestBuckets();

}  // namespace c2d::deployer
