#pragma once

// Prometheus families of the job system, shared by Worker and the rescuer.

#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace c2d::jobs {

struct JobMetrics {
  // {queue, kind}
  prometheus::Family<prometheus::Counter>& claimed;
  prometheus::Family<prometheus::Counter>& succeeded;
  prometheus::Family<prometheus::Counter>& retried;
  prometheus::Family<prometheus::Counter>& failed;
  prometheus::Family<prometheus::Counter>& lost;  // cancelled or rescued under the handler
  // {queue}
  prometheus::Family<prometheus::Counter>& rescued;
  // {queue, kind, result}
  prometheus::Family<prometheus::Histogram>& duration;
  // {queue, state}
  prometheus::Family<prometheus::Gauge>& depth;
  prometheus::Family<prometheus::Gauge>& oldest_age;
};

JobMetrics& Metrics();

}  // namespace c2d::jobs
