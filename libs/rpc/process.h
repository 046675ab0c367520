#pragma once

// The start-up and shutdown that all six c2d service processes share, so that
// each services/<svc>/main.cc is only its own wiring:
//
//   int main() {
//     auto process = c2d::rpc::Process::Init("builder");
//     if (!process.ok()) return c2d::rpc::Process::Fail(process.status());
//     BuilderServiceImpl service((*process)->pool());
//     (*process)->AddWorker("builder").Register("build", HandleBuild);
//     return (*process)->Serve({{BuilderService::service_full_name(), &service}});
//   }
//
// Configuration (environment): C2D_DATABASE_URL and the C2D_DB_* pool
// settings, C2D_GRPC_ADDR and C2D_METRICS_ADDR (defaults per service, see
// README), C2D_LOG_LEVEL, C2D_SHUTDOWN_GRACE, the C2D_WORKERS/C2D_JOB_*
// worker settings, C2D_READY_FILE (when set, a JSON file with the bound
// addresses is written there once the process serves).

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/jobs/leader.h"
#include "libs/jobs/worker.h"
#include "libs/metrics/metrics.h"
#include "libs/pg/pool.h"
#include "libs/rpc/server.h"

namespace c2d::rpc {

class Process {
 public:
  // Blocks termination signals, reads configuration, opens the database pool,
  // checks the schema version against this build's, and starts /metrics.
  static absl::StatusOr<std::unique_ptr<Process>> Init(std::string name);
  // Logs a start-up error and returns the exit code for main().
  static int Fail(const absl::Status& status);

  pg::Pool& pool() { return *pool_; }
  const pg::ConnectOptions& connect_options() const { return pool_->options().connect; }

  // A worker pool for `queue`, configured from the environment, started by Serve.
  jobs::Worker& AddWorker(std::string queue);
  // Served on /metrics with the registry's families (metrics::Exposer::Add).
  void AddCollectable(std::shared_ptr<prometheus::Collectable> c) { exposer_->Add(std::move(c)); }
  // A leader-elected periodic duty, started by Serve.
  // `on_lost`: see jobs::Leader.
  void AddLeader(std::string duty, std::chrono::milliseconds interval, std::function<void()> fn,
                 std::function<void()> on_lost = nullptr);

  // Another address this process serves (e.g. "http"), for the log line and
  // the ready file.
  void AddReadyAddress(std::string name, std::string address) {
    addresses_.emplace_back(std::move(name), std::move(address));
  }
  // Runs first when a termination signal arrives, given the drain grace.
  void OnShutdown(std::function<void(std::chrono::milliseconds grace)> hook) {
    shutdown_hooks_.push_back(std::move(hook));
  }

  // Starts workers, duties and the gRPC server; blocks until SIGTERM or SIGINT;
  // then drains (health NOT_SERVING, in-flight calls and jobs get
  // C2D_SHUTDOWN_GRACE) and returns the process exit code.
  int Serve(const std::vector<Server::Registration>& services);

 private:
  Process() = default;

  std::string name_;
  std::string grpc_address_;
  std::chrono::milliseconds grace_{20'000};
  jobs::WorkerOptions worker_options_;  // from the environment; queue set per worker
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<metrics::Exposer> exposer_;
  std::vector<std::unique_ptr<jobs::Worker>> workers_;
  struct Duty {
    std::string name;
    std::chrono::milliseconds interval;
    std::function<void()> fn;
    std::function<void()> on_lost;
  };
  std::vector<Duty> duties_;
  std::vector<std::pair<std::string, std::string>> addresses_;
  std::vector<std::function<void(std::chrono::milliseconds)>> shutdown_hooks_;
};

}  // namespace c2d::rpc
