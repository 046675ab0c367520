#include "services/deployer/metrics.h"

#include "libs/metrics/metrics.h"

namespace c2d::deployer {

DeployerMetrics& Metrics() {
  static DeployerMetrics* m = [] {
    auto& reg = metrics::Registry();
    auto& latency = prometheus::BuildHistogram()
                        .Name("c2d_health_check_seconds")
                        .Help("Latency of instance health checks")
                        .Register(reg);
    return new DeployerMetrics{
        prometheus::BuildGauge()
            .Name("c2d_instances")
            .Help("Instances of live and deploying deployments, by service and state")
            .Register(reg),
        prometheus::BuildCounter()
            .Name("c2d_instance_restarts_total")
            .Help("Instances restarted by the reconciler, by service")
            .Register(reg),
        prometheus::BuildCounter()
            .Name("c2d_health_checks_total")
            .Help("Instance health checks, by service and result")
            .Register(reg),
        latency.Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                                                1, 2, 5, 10}),
        prometheus::BuildHistogram()
            .Name("c2d_deploy_seconds")
            .Help("Duration of deployments, from the deploy job's start to live or failed")
            .Register(reg),
        prometheus::BuildCounter()
            .Name("c2d_app_requests_total")
            .Help("Requests the ingress served, by service and status class (1xx to 5xx)")
            .Register(reg),
        prometheus::BuildHistogram()
            .Name("c2d_app_request_duration_seconds")
            .Help("Duration of requests the ingress served, by service")
            .Register(reg),
        prometheus::BuildCounter()
            .Name("c2d_ingress_requests_unmatched_total")
            .Help("Requests the ingress logged for a host of no service")
            .Register(reg)
            .Add({}),
    };
  }();
  return *m;
}

const prometheus::Histogram::BucketBoundaries& AppRequestBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *b;
}

}  // namespace c2d::deployer
