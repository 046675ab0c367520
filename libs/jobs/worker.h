#pragma once

// A pool of job workers for one queue (DESIGN §3).
//
// Threads, and what each owns:
//  - dispatcher: claims due jobs in one statement per batch, as many as the
//    idle executors can take plus a local prefetch buffer, and hands them to
//    the executors; sleeps until a NOTIFY, room for a batch, the next known
//    run_at, or the poll interval, whichever comes first. The prefetch is as
//    many jobs as the worker finished in the last 100 ms (at most
//    `max_prefetch`): short jobs stream through, long ones (a build, a
//    deploy) are claimed only when an executor is free, never hoarded.
//  - listener (a pg::Listener): its own connection, LISTEN c2d_jobs_<queue>;
//    wakes the dispatcher on each NOTIFY and after each reconnect (a missed
//    NOTIFY costs at most a poll interval).
//  - heartbeater: extends the leases of all claims held (prefetched, running
//    or being recorded) in one statement; a claim the database no longer
//    shows as ours (cancelled, or rescued after a lost lease) has its
//    JobContext cancelled.
//  - rescuer: returns expired leases of any queue to their queue and refreshes
//    the queue-depth gauge. Every process runs one; SKIP LOCKED keeps them apart.
//  - executors (`concurrency` threads): run handlers and pass their outcomes
//    to the completer, then take the next job at once.
//  - completer: records outcomes in groups, one statement per kind of
//    outcome (what finished while the previous group was written, after at
//    most 1 ms), retrying through database outages until the leases would
//    expire. An outcome not yet recorded when the process dies is lost with
//    it: the job runs again after its lease, as after any crash.
//
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "libs/jobs/job.h"
#include "libs/jobs/queue.h"
#include "libs/pg/listener.h"
#include "libs/pg/pool.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"

namespace c2d::jobs {

struct WorkerOptions {
  std::string queue;
  int concurrency = 4;                              // C2D_WORKERS
  int max_batch = 256;                              // jobs per claim statement
  int max_prefetch = 512;                           // jobs claimed ahead of the executors
  std::chrono::milliseconds lease{30'000};          // C2D_JOB_LEASE
  std::chrono::milliseconds heartbeat_interval{0};  // 0 = lease / 3
  std::chrono::milliseconds poll_interval{2'000};   // C2D_JOB_POLL_INTERVAL
  std::chrono::milliseconds rescue_interval{5'000};
  std::chrono::milliseconds backoff_base{1'000};     // C2D_JOB_BACKOFF_BASE
  std::chrono::milliseconds backoff_max{3'600'000};  // C2D_JOB_BACKOFF_MAX
  std::chrono::milliseconds shutdown_grace{20'000};  // C2D_SHUTDOWN_GRACE
  // Identifies this process in locked_by (as <id>/<claim number>); default
  // host:pid:random.
  std::string worker_id;

  // Reads C2D_WORKERS, C2D_JOB_LEASE, C2D_JOB_POLL_INTERVAL, C2D_JOB_BACKOFF_BASE,
  // C2D_JOB_BACKOFF_MAX and C2D_SHUTDOWN_GRACE over the defaults above.
  static absl::StatusOr<WorkerOptions> FromEnv(std::string queue);
};

class Worker {
 public:
  // `pool` must outlive the worker; `listen` opens the listener's connection.
  Worker(pg::Pool& pool, pg::ConnectOptions listen, WorkerOptions options);
  ~Worker();  // Shutdown()
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Before Start only. The worker claims only kinds it has a handler for, so
  // jobs of unknown kinds wait for a process that knows them.
  void Register(std::string kind, Handler handler);

  // Starts the threads. Claims nothing when no handler is registered.
  absl::Status Start();

  // Idempotent; blocks until every thread has stopped or been given up on.
  void Shutdown();

  const std::string& worker_id() const { return options_.worker_id; }

 private:
  struct InFlight {
    std::shared_ptr<JobContext> context;
  };
  // A finished attempt on its way to the database.
  struct Finished {
    std::shared_ptr<JobContext> context;
    Outcome outcome;
    absl::Status result;
    double seconds = 0;
    absl::Time deadline;  // its lease, counted from the handler's return
  };

  void DispatchLoop();
  void HeartbeatLoop();
  void RescueLoop();
  void ExecuteLoop();
  void CompleteLoop();
  // Runs the handler and decides the outcome.
  Finished RunOne(const std::shared_ptr<JobContext>& context);
  // Records a group of outcomes, then reports each (metrics, log).
  void Flush(std::vector<Finished> group);
  void Report(const Finished& f, const absl::StatusOr<Recorded>& recorded);
  // A kind's series, looked up once (a job of the queue is one of its kinds).
  struct KindMetrics {
    prometheus::Counter *claimed, *succeeded, *retried, *failed, *lost;
    prometheus::Histogram *succeeded_seconds, *retried_seconds, *failed_seconds, *released_seconds,
        *lost_seconds;
  };
  KindMetrics ResolveMetrics(const std::string& kind) const;
  // Jobs to claim now: what idle executors would take at once, or a batch
  // of at least half the buffer.
  int WantLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records outcomes (fn runs `statements` statements); retries through
  // connection errors until `deadline`.
  template <typename F>
  auto Record(absl::string_view what, absl::Time deadline, int statements, F&& fn)
      -> std::invoke_result_t<F, pg::Tx&>;
  void Wake();
  // Sleeps up to `d` or until the background threads must exit; false then.
  bool SleepFor(absl::Duration d);

  pg::Pool& pool_;
  const pg::ConnectOptions listen_;
  WorkerOptions options_;
  std::map<std::string, Handler> handlers_;  // read-only after Start
  std::vector<std::string> kinds_;
  std::map<std::string, KindMetrics> metrics_;  // by kind; read-only after Start

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // no more claims
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::shared_ptr<JobContext>> ready_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);  // claimed, not yet recorded
  int running_ ABSL_GUARDED_BY(mu_) = 0;                        // handlers running
  std::vector<Finished> finished_ ABSL_GUARDED_BY(mu_);         // for the completer
  // Jobs finished since window_start_, and the prefetch they set.
  int finished_in_window_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_);
  int prefetch_ ABSL_GUARDED_BY(mu_) = 0;
  bool executors_exit_ ABSL_GUARDED_BY(mu_) = false;  // exit once ready_ is empty
  int executors_running_ ABSL_GUARDED_BY(mu_) = 0;
  bool completer_exit_ ABSL_GUARDED_BY(mu_) = false;   // exit once finished_ is empty
  bool background_exit_ ABSL_GUARDED_BY(mu_) = false;  // heartbeater and rescuer

  int64_t claims_made_ = 0;  // the dispatcher's
  std::thread dispatcher_, heartbeater_, rescuer_, completer_;
  std::unique_ptr<pg::Listener> listener_;
  std::vector<std::thread> executors_;
  bool shut_down_ = false;  // Shutdown() completed; only touched by the owner thread
};

}  // namespace c2d::jobs
