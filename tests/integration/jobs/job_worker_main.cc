// A job worker process for the multi-process queue tests.
//
//   c2d-test-job-worker record   every "test" job inserts (job_id, worker) into handled
//   c2d-test-job-worker block    every "test" job waits until it is cancelled
//
// Runs until SIGTERM/SIGINT, then shuts the worker down and exits 0.
// Configuration: C2D_DATABASE_URL and the usual C2D_WORKERS / C2D_JOB_* variables.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "libs/common/log.h"
#include "libs/jobs/worker.h"
#include "libs/rpc/signals.h"

int main(int argc, char** argv) {
  using namespace c2d;
  rpc::BlockTerminationSignals();
  log::Init("test-worker");
  if (argc != 2 || (std::strcmp(argv[1], "record") != 0 && std::strcmp(argv[1], "block") != 0)) {
    std::fprintf(stderr, "usage: c2d-test-job-worker record|block\n");
    return 2;
  }
  const bool block = std::strcmp(argv[1], "block") == 0;
  auto pool_options = pg::PoolOptions::FromEnv("c2d-test-worker");
  auto worker_options = jobs::WorkerOptions::FromEnv("test");
  if (!pool_options.ok() || !worker_options.ok()) {
    std::fprintf(stderr, "bad configuration\n");
    return 2;
  }
  pg::Pool pool(*pool_options);
  jobs::Worker worker(pool, pool_options->connect, *worker_options);
  static constexpr pg::Statement kRecord{"test_record",
                                         "INSERT INTO handled (job_id, worker) VALUES ($1, $2)"};
  const std::string me = worker.worker_id();
  worker.Register("test", [&](jobs::JobContext& ctx) -> absl::Status {
    if (block) {
      while (!ctx.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return absl::CancelledError("cancelled");
    }
    return pool.Transact("record", [&](pg::Tx& tx) {
      tx.Exec(kRecord, ctx.job().id, me);
      return absl::OkStatus();
    });
  });
  if (auto s = worker.Start(); !s.ok()) return 1;
  rpc::WaitForTerminationSignal();
  worker.Shutdown();
  return 0;
}
