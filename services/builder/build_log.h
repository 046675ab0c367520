#pragma once

// The log of one running build: lines are numbered, stripped of secret
// values, stored in build_logs and announced with NOTIFY so that streams
// see them live. Lines are written in small batches, at most ~200 ms late.
// Thread-safe; Close() (or the destructor) writes what is left.

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/pg/pool.h"
#include "services/builder/build_store.h"

namespace c2d::builder {

class BuildLog {
 public:
  // Continues after the last stored line (a re-run after a crash appends).
  // `secrets` are replaced by "[redacted]" wherever they appear.
  BuildLog(pg::Pool& pool, std::string build_id, std::vector<std::string> secrets);
  ~BuildLog();

  void Line(absl::string_view stream, absl::string_view text);
  void System(absl::string_view text) { Line("system", text); }
  // Writes everything added so far.
  void Flush();
  void Close();

  std::string Redact(absl::string_view text) const;

 private:
  void FlushLoop();

  pg::Pool& pool_;
  const std::string build_id_;
  std::vector<std::string> secrets_;  // longest first
  absl::Mutex mu_;
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<LogRow> pending_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex write_mu_;  // one writer at a time keeps seq order
  std::thread flusher_;
};

}  // namespace c2d::builder
