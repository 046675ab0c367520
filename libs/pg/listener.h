#pragma once

// One LISTEN connection per process and channel, fanned out to any number of
// waiters keyed by the notification payload (e.g. a build id). Waiters use
// version counters, so a notification that arrives between reading data and
// starting to wait is never missed:
//
//   uint64_t seen = listener.Version(build_id);
//   ... read everything new ...
//   listener.WaitForChange(build_id, seen, absl::Seconds(1));
//
// After a reconnect every waiter wakes (notifications may have been lost).
// Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"

namespace c2d::pg {

class Listener {
 public:
  // `on_change`, when given, is called (on the listener's thread) for every
  // notification with its payload, and with "" after each (re)connect.
  Listener(ConnectOptions connect, std::string channel,
           std::function<void(const std::string& payload)> on_change = nullptr);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // A counter that changes whenever `key` is notified (or the connection is
  // re-established).
  uint64_t Version(const std::string& key);
  // Blocks until Version(key) != seen or `timeout` passes.
  void WaitForChange(const std::string& key, uint64_t seen, absl::Duration timeout);

 private:
  void Loop();
  uint64_t VersionLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ConnectOptions connect_;
  const std::string channel_;
  const std::function<void(const std::string&)> on_change_;
  absl::Mutex mu_;
  std::map<std::string, uint64_t> versions_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;  // bumped on every (re)connect
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace c2d::pg
