#pragma once

// Every statement the job system runs against the jobs table (DESIGN §3).
// Producers use Enqueue/Cancel/Get inside their own transactions; the Worker
// uses the rest.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/jobs/job.h"
#include "libs/pg/pool.h"

namespace c2d::jobs {

// The LISTEN/NOTIFY channel that wakes a queue's idle workers.
std::string Channel(absl::string_view queue);

struct Enqueued {
  int64_t id = 0;
  bool created = false;  // false: a live job with the same unique_key already existed
};

// Inserts the job inside the caller's transaction, so that it exists exactly
// when the caller's own writes do, and notifies the queue at commit.
// InvalidArgument for a malformed queue, kind or payload.
absl::StatusOr<Enqueued> Enqueue(pg::Tx& tx, const NewJob& job);

// A job on its own, committed (durably) when this returns: one statement,
// one round trip, without BEGIN and COMMIT (a unique key held by a live job
// may take two more).
absl::StatusOr<Enqueued> Enqueue(pg::Pool& pool, const NewJob& job);

// Inserts many jobs inside the caller's transaction, one entry per job in
// order, notifying each queue once. A job whose unique_key matches a live
// job, or an earlier job of the batch, is not inserted: its entry holds that
// job's id with created=false. InvalidArgument (and nothing inserted) when
// any job is malformed.
absl::StatusOr<std::vector<Enqueued>> EnqueueMany(pg::Tx& tx, const std::vector<NewJob>& jobs);

// Cancels an available or running job. A running job's handler sees it at its
// next heartbeat. Returns false when the job had already ended (or does not exist).
absl::StatusOr<bool> Cancel(pg::Tx& tx, int64_t id);

absl::StatusOr<Job> Get(pg::Tx& tx, int64_t id);

// ---- Used by Worker -------------------------------------------------------

// Claims up to `limit` available jobs of `queue` whose kind is in `kinds` and
// whose run_at has come, in (priority, run_at, id) order, with a lease of
// `lease`, in one statement (so Pool::Read runs it in one round trip). Each
// claim counts an attempt and holds the jobs as `holder` (their locked_by),
// which must be new at each call: the worker's id and a sequence number.
//
// A claim commits without waiting for its WAL to reach the disk. If
// PostgreSQL itself crashes, a claim of its last moments may be undone and
// the job claimed again under the same attempt number; the holder tells the
// two claims apart, so the first one's heartbeats and outcome change nothing
// (its handler is told to stop). A handler's own durable commit makes its
// claim durable too (WAL is flushed in order).
absl::StatusOr<std::vector<Job>> Claim(pg::Tx& tx, absl::string_view queue,
                                       const std::vector<std::string>& kinds,
                                       absl::string_view holder, int limit,
                                       std::chrono::milliseconds lease);

// When the next scheduled job of `queue` (one of `kinds`; enqueued for
// later, or retrying after a backoff) becomes due, if any is waiting.
absl::StatusOr<std::optional<absl::Time>> NextRunAt(pg::Tx& tx, absl::string_view queue,
                                                    const std::vector<std::string>& kinds);

// A claim: the job, the attempt number it was claimed at and its holder.
struct ClaimRef {
  int64_t id = 0;
  int attempt = 0;
  std::string holder;
};

// Extends the leases of `claims` still held; returns the ids still held (a
// missing id was cancelled or rescued). One statement.
absl::StatusOr<std::vector<int64_t>> Heartbeat(pg::Tx& tx, const std::vector<ClaimRef>& claims,
                                               std::chrono::milliseconds lease);

// The outcome of a finished attempt, recorded with others in one statement
// per kind.
struct Outcome {
  enum class Kind { kSucceeded, kFailed, kReleased };
  ClaimRef claim;
  Kind kind = Kind::kSucceeded;
  // kFailed: back to available at now()+retry_delay, or failed when
  // attempts are used up or `permanent`. kReleased (worker shutdown):
  // available again at once, and the attempt does not count.
  std::string error;  // kFailed: the error; kReleased: why
  bool permanent = false;
  std::chrono::milliseconds retry_delay{0};
};
struct Recorded {
  bool held = false;  // false: the claim was no longer held (cancelled, rescued): nothing changed
  State state = State::kRunning;  // the job's new state when held
};
// Records outcomes of claims still held: one entry per outcome, in order.
// One statement per kind of outcome present; released jobs notify their
// queues. Outcomes, like claims, commit without waiting for the disk: after
// a crash of PostgreSQL the job runs again, as after a worker's crash.
absl::StatusOr<std::vector<Recorded>> RecordOutcomes(pg::Tx& tx,
                                                     const std::vector<Outcome>& outcomes);
// How many statements RecordOutcomes runs for `outcomes`.
int OutcomeStatements(const std::vector<Outcome>& outcomes);

struct Rescued {
  int64_t id = 0;
  std::string queue;
  State state = State::kAvailable;  // available, or failed when out of attempts
};

// Returns running jobs whose lease expired before now() to their queue (the
// lost attempt counts), at most `limit` per call, and notifies their queues.
absl::StatusOr<std::vector<Rescued>> RescueExpired(pg::Tx& tx, int limit);

struct Depth {
  std::string queue;
  State state;
  int64_t count = 0;
  // How long the oldest has waited (available: since its run_at, counting
  // only jobs due) or run (running: since its claim); 0 when none.
  double oldest_age_seconds = 0;
};
// Number and oldest age of available and running jobs per queue.
absl::StatusOr<std::vector<Depth>> QueueDepths(pg::Tx& tx);

}  // namespace c2d::jobs
