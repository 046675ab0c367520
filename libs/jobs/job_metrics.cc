#include "libs/jobs/job_metrics.h"

#include "libs/metrics/metrics.h"

namespace c2d::jobs {

JobMetrics& Metrics() {
  static JobMetrics* m = [] {
    auto& reg = metrics::Registry();
    auto counter = [&](const char* name,
                       const char* help) -> prometheus::Family<prometheus::Counter>& {
      return prometheus::BuildCounter().Name(name).Help(help).Register(reg);
    };
    return new JobMetrics{
        counter("c2d_jobs_claimed_total", "Jobs claimed by this process, by queue and kind"),
        counter("c2d_jobs_succeeded_total", "Jobs that succeeded, by queue and kind"),
        counter("c2d_jobs_retried_total", "Failed attempts scheduled for a retry"),
        counter("c2d_jobs_failed_total",
                "Jobs that failed for good (permanent or out of attempts)"),
        counter("c2d_jobs_lost_total",
                "Attempts whose job was cancelled or rescued while the handler ran"),
        counter("c2d_jobs_rescued_total", "Expired leases returned to their queue"),
        prometheus::BuildHistogram()
            .Name("c2d_job_duration_seconds")
            .Help("Handler run time per attempt, by queue, kind and result")
            .Register(reg),
        prometheus::BuildGauge()
            .Name("c2d_jobs_queue_depth")
            .Help("Jobs available or running, by queue and state")
            .Register(reg),
        prometheus::BuildGauge()
            .Name("c2d_jobs_oldest_age_seconds")
            .Help("How long the oldest job has waited since it was due (available) or run "
                  "since its claim (running), by queue and state; 0 when there is none")
            .Register(reg),
    };
  }();
  return *m;
}

}  // namespace c2d::jobs
