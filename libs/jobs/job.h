#pragma once

// The shared job table (DESIGN §3): what a job is, to producers and handlers.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace c2d::jobs {

enum class State { kAvailable, kRunning, kSucceeded, kFailed, kCancelled };

absl::string_view StateName(State state);
std::optional<State> ParseState(absl::string_view name);

// What a producer asks for.
struct NewJob {
  std::string queue;           // the owning service's queue: builder, deployer, dbprov, dns, certs
  std::string kind;            // e.g. "build"; a worker claims only kinds it has handlers for
  std::string payload = "{}";  // JSON object (the kind's protobuf message in proto3 JSON)
  int priority = 100;          // lower runs first
  std::optional<absl::Time> run_at;  // not before; default now
  int max_attempts = 10;
  // When set, at most one job with this key is available or running per
  // queue; enqueueing another returns the live one.
  std::string unique_key;
};

// A row of the jobs table.
struct Job {
  int64_t id = 0;
  std::string queue;
  std::string kind;
  std::string payload;
  State state = State::kAvailable;
  int priority = 100;
  int attempts = 0;  // including the one in progress
  int max_attempts = 10;
  std::string unique_key;
  std::string last_error;
  std::string locked_by;
  absl::Time run_at;
};

// Given to a handler while it runs its job.
class JobContext {
 public:
  explicit JobContext(Job job) : job_(std::move(job)) {}

  const Job& job() const { return job_; }

  // True once the job was cancelled, its lease was lost (another worker may
  // now run it), or the worker is shutting down past its grace period. A
  // handler checks this between steps and returns promptly when it is set;
  // whatever it returns afterwards is ignored.
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  // The same, for calls that poll a flag (http::Request::cancel, RunCommand).
  const std::atomic<bool>* cancel_flag() const { return &cancelled_; }

 private:
  Job job_;
  std::atomic<bool> cancelled_{false};
};

// A handler returns OK (succeeded), a permanent error (failed now, no retry),
// or any other error (retried with backoff until max_attempts). Handlers must
// be idempotent: after a crash a job runs again.
using Handler = std::function<absl::Status(JobContext&)>;

// Marks an error as not worth retrying (bad payload, missing resource, …).
absl::Status Permanent(absl::Status status);
bool IsPermanent(const absl::Status& status);

}  // namespace c2d::jobs
