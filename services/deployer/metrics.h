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
};

DeployerMetrics& Metrics();

}  // namespace c2d::deployer
