#pragma once

// Runtime logs (DESIGN §2, deployer): one follower thread per running
// instance streams its container's output into runtime_log_tail, where
// StreamRuntimeLogs reads it. Lines are written in batches (every 250 ms),
// timed by the engine, and a follower that starts again (a container
// restart, a new leader) resumes after the newest stored line, so nothing is
// stored twice. The tail of an instance outlives it: its last lines stay
// readable after it was replaced or crashed. Followers run only where Sync
// keeps being called (the reconciler's leader): when it has not been for
// `stale_after`, leadership has moved and they stop by themselves, so a
// deposed leader never stores lines twice alongside the new one.
// Thread-safe.

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "services/deployer/runtime.h"
#include "services/deployer/store.h"

namespace c2d::deployer {

class LogFollowers {
 public:
  LogFollowers(Runtime& runtime, absl::Duration stale_after);
  ~LogFollowers();  // stops every follower

  // Follows exactly the containers of `rows` (those with a provider ref):
  // starts followers for new ones or ones whose follower ended (the
  // container stopped and started again), stops the others.
  void Sync(const std::vector<InstanceRow>& rows);
  // Stops every follower (leadership lost).
  void StopAll();

 private:
  struct Follower {
    std::string service_id, instance_id, ref;
    // The engine's time of its newest stored line: it resumes after it.
    std::optional<absl::Time> since;
    std::atomic<bool> cancel{false};
    std::atomic<bool> done{false};
    absl::Mutex mu;
    std::vector<RuntimeLine> pending ABSL_GUARDED_BY(mu);
    std::thread thread;
  };

  void Follow(Follower* f);
  void FlushLoop();
  void Flush(Follower* f);

  Runtime& runtime_;
  const absl::Duration stale_after_;
  absl::Mutex mu_;
  absl::Time last_sync_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::map<std::string, std::unique_ptr<Follower>> followers_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread flusher_;
};

}  // namespace c2d::deployer
