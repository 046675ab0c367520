#pragma once

// Leader election for periodic duties (reconcile, renewal sweep, backup
// schedule, image GC): among all processes that run a Leader with the same
// name, at most one holds the PostgreSQL session advisory lock derived from
// that name, and only it runs the duty, every `interval`. When the leader's
// session dies, PostgreSQL drops the lock and another process takes over at
// its next try.
//
// The lock is tied to a session, not to the duty: an old leader cut off from
// the database may still be finishing a duty while the new one starts, so
// duties must be idempotent (every c2d duty is).

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/pg/pool.h"

namespace c2d::jobs {

class Leader {
 public:
  // `on_lost` (optional) runs on the duty's thread when this process stops
  // being the leader while it goes on (its session died or the lock went
  // to another): what the duty exported as the leader (gauges) goes with
  // it, or the old leader would report it next to the new one.
  Leader(pg::ConnectOptions connect, std::string name, std::chrono::milliseconds interval,
         std::function<void()> duty, std::function<void()> on_lost = nullptr);
  ~Leader();  // Stop()
  Leader(const Leader&) = delete;
  Leader& operator=(const Leader&) = delete;

  void Start();
  // Ends the current duty run's successors and gives up leadership.
  void Stop();

  bool is_leader() const;
  // The advisory lock key for `name` (first 8 bytes of its SHA-256).
  static int64_t LockKey(const std::string& name);

 private:
  void Loop();

  const pg::ConnectOptions connect_;
  const std::string name_;
  const std::chrono::milliseconds interval_;
  const std::function<void()> duty_;
  const std::function<void()> on_lost_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool leader_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace c2d::jobs
