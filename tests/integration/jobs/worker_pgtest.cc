// The job queue in one process: retries and backoff, permanent failures,
// unique keys, cancellation, scheduling, priorities, transactional enqueue,
// shutdown, and leader election.

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/jobs/leader.h"
#include "libs/jobs/queue.h"
#include "libs/jobs/worker.h"
#include "libs/metrics/metrics.h"
#include "tests/support/pg_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using testing::TestDatabase;
using testing::WaitFor;

jobs::WorkerOptions FastOptions(int concurrency = 2) {
  jobs::WorkerOptions o;
  o.queue = "test";
  o.concurrency = concurrency;
  o.lease = 900ms;  // heartbeat every 300 ms
  o.poll_interval = 200ms;
  o.rescue_interval = 200ms;
  o.backoff_base = 100ms;
  o.backoff_max = 5s;
  o.shutdown_grace = 2s;
  return o;
}

int64_t Enqueue(pg::Pool& pool, jobs::NewJob job) {
  if (job.queue.empty()) job.queue = "test";
  if (job.kind.empty()) job.kind = "test";
  auto r = pool.Transact("enqueue", [&](pg::Tx& tx) { return jobs::Enqueue(tx, job); });
  REQUIRE(r.ok());
  return r->id;
}

jobs::Job GetJob(pg::Pool& pool, int64_t id) {
  auto j = pool.Transact("get", [&](pg::Tx& tx) { return jobs::Get(tx, id); });
  REQUIRE(j.ok());
  return *j;
}

bool WaitState(pg::Pool& pool, int64_t id, jobs::State state, std::chrono::milliseconds t = 20s) {
  return WaitFor(t, [&] { return GetJob(pool, id).state == state; });
}

TEST_CASE("a handler failing twice then succeeding ends succeeded after 3 attempts", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  jobs::Worker worker(*pool, db.connect(), FastOptions());
  std::atomic<int> calls{0};
  worker.Register("test", [&](jobs::JobContext&) {
    return ++calls <= 2 ? absl::UnavailableError("flaky dependency") : absl::OkStatus();
  });
  REQUIRE(worker.Start().ok());
  int64_t id = Enqueue(*pool, {});
  REQUIRE(WaitState(*pool, id, jobs::State::kSucceeded));
  jobs::Job job = GetJob(*pool, id);
  CHECK(job.attempts == 3);
  CHECK(calls == 3);
  CHECK(job.last_error.find("flaky dependency") != std::string::npos);
}

TEST_CASE(
    "an always-failing handler ends failed after max_attempts, keeping the error, with "
    "growing delays",
    "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  jobs::WorkerOptions options = FastOptions();
  options.backoff_base = 200ms;
  jobs::Worker worker(*pool, db.connect(), options);
  std::mutex mu;
  std::vector<absl::Time> starts;
  worker.Register("test", [&](jobs::JobContext& ctx) {
    std::lock_guard lock(mu);
    starts.push_back(absl::Now());
    return absl::InternalError(absl::StrCat("boom on attempt ", ctx.job().attempts));
  });
  REQUIRE(worker.Start().ok());
  int64_t id = Enqueue(*pool, {.max_attempts = 4});
  REQUIRE(WaitState(*pool, id, jobs::State::kFailed));
  jobs::Job job = GetJob(*pool, id);
  CHECK(job.attempts == 4);
  CHECK(job.last_error.find("boom on attempt 4") != std::string::npos);
  std::lock_guard lock(mu);
  REQUIRE(starts.size() == 4);
  // Delays are drawn from [d/2, d] with d doubling: each gap outgrows the last.
  const absl::Duration g1 = starts[1] - starts[0], g2 = starts[2] - starts[1],
                       g3 = starts[3] - starts[2];
  CHECK(g1 >= absl::Milliseconds(100));
  CHECK(g2 > g1);
  CHECK(g3 > g2);
}

TEST_CASE("a permanent error fails the job at once", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  jobs::Worker worker(*pool, db.connect(), FastOptions());
  worker.Register("test", [](jobs::JobContext&) {
    return jobs::Permanent(absl::InvalidArgumentError("payload names no build"));
  });
  REQUIRE(worker.Start().ok());
  int64_t id = Enqueue(*pool, {.max_attempts = 5});
  REQUIRE(WaitState(*pool, id, jobs::State::kFailed));
  CHECK(GetJob(*pool, id).attempts == 1);
  CHECK(GetJob(*pool, id).last_error.find("payload names no build") != std::string::npos);
}

TEST_CASE("unique keys collapse duplicates while a job is live", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  auto enqueue = [&](std::string key) {
    auto r = pool->Transact("enqueue", [&](pg::Tx& tx) {
      return jobs::Enqueue(tx, {.queue = "test", .kind = "test", .unique_key = key});
    });
    REQUIRE(r.ok());
    return *r;
  };
  jobs::Enqueued first = enqueue("build:svc_1:abc");
  jobs::Enqueued second = enqueue("build:svc_1:abc");
  jobs::Enqueued other = enqueue("build:svc_1:def");
  CHECK(first.created);
  CHECK_FALSE(second.created);
  CHECK(second.id == first.id);
  CHECK(other.created);
  CHECK(other.id != first.id);
  CHECK(db.Count("SELECT count(*) FROM jobs") == 2);

  // Once the job has ended, the key is free again.
  jobs::Worker worker(*pool, db.connect(), FastOptions());
  worker.Register("test", [](jobs::JobContext&) { return absl::OkStatus(); });
  REQUIRE(worker.Start().ok());
  REQUIRE(WaitState(*pool, first.id, jobs::State::kSucceeded));
  jobs::Enqueued again = enqueue("build:svc_1:abc");
  CHECK(again.created);
  CHECK(again.id != first.id);
}

TEST_CASE("cancellation stops a running job and keeps an available one from running", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  jobs::Worker worker(*pool, db.connect(), FastOptions(1));
  std::atomic<bool> running{false}, saw_cancel{false};
  std::atomic<int> runs{0};
  worker.Register("test", [&](jobs::JobContext& ctx) -> absl::Status {
    ++runs;
    running = true;
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (!ctx.cancelled() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(10));
    saw_cancel = ctx.cancelled();
    return absl::CancelledError("stopped on request");
  });
  int64_t waiting = Enqueue(*pool, {.priority = 200, .run_at = absl::Now() + absl::Seconds(2)});
  int64_t id = Enqueue(*pool, {.priority = 1});
  REQUIRE(worker.Start().ok());
  REQUIRE(WaitFor(10s, [&] { return running.load(); }));

  auto cancelled = pool->Transact("cancel", [&](pg::Tx& tx) { return jobs::Cancel(tx, id); });
  REQUIRE(cancelled.ok());
  CHECK(*cancelled);
  auto cancelled_waiting =
      pool->Transact("cancel", [&](pg::Tx& tx) { return jobs::Cancel(tx, waiting); });
  REQUIRE(cancelled_waiting.ok());
  CHECK(*cancelled_waiting);
  // The handler hears of it at the next heartbeat (lease/3 = 300 ms).
  REQUIRE(WaitFor(5s, [&] { return saw_cancel.load(); }));
  CHECK(GetJob(*pool, id).state == jobs::State::kCancelled);
  CHECK(GetJob(*pool, id).attempts == 1);
  // Cancelling again reports that the job had already ended.
  auto again = pool->Transact("cancel", [&](pg::Tx& tx) { return jobs::Cancel(tx, id); });
  CHECK_FALSE(*again);
  // The waiting job never runs, even after its run_at.
  absl::SleepFor(absl::Seconds(3));
  CHECK(runs == 1);
  CHECK(GetJob(*pool, waiting).state == jobs::State::kCancelled);
  CHECK(GetJob(*pool, waiting).attempts == 0);
}

TEST_CASE("a job with a future run_at is not claimed early", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  jobs::Worker worker(*pool, db.connect(), FastOptions());
  std::mutex mu;
  std::map<int64_t, absl::Time> ran_at;
  worker.Register("test", [&](jobs::JobContext& ctx) {
    std::lock_guard lock(mu);
    ran_at[ctx.job().id] = absl::Now();
    return absl::OkStatus();
  });
  REQUIRE(worker.Start().ok());
  const absl::Time soon = absl::Now() + absl::Milliseconds(1500);
  int64_t later = Enqueue(*pool, {.run_at = soon});
  int64_t much_later = Enqueue(*pool, {.run_at = absl::Now() + absl::Hours(1)});
  int64_t now = Enqueue(*pool, {});
  REQUIRE(WaitState(*pool, later, jobs::State::kSucceeded));
  REQUIRE(WaitState(*pool, now, jobs::State::kSucceeded));
  std::lock_guard lock(mu);
  CHECK(ran_at[later] >= soon);
  CHECK(ran_at[now] < soon);
  // Picked up promptly when due, not a poll interval later than needed.
  CHECK(ran_at[later] - soon < absl::Milliseconds(1000));
  CHECK(GetJob(*pool, much_later).state == jobs::State::kAvailable);
  CHECK(GetJob(*pool, much_later).attempts == 0);
}

// The value of the gauge `name` for {queue, state}; -1 when it has none.
double Gauge(const std::string& name, const std::string& queue, const std::string& state) {
  for (const auto& family : metrics::Registry().Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (labels["queue"] == queue && labels["state"] == state) return m.gauge.value;
    }
  }
  return -1;
}

TEST_CASE("queue depths count jobs and say how long the oldest due one has waited", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  const int64_t old = Enqueue(*pool, {.queue = "aging"});
  Enqueue(*pool, {.queue = "aging"});
  Enqueue(*pool, {.queue = "aging", .run_at = absl::Now() + absl::Hours(1)});
  Enqueue(*pool, {.queue = "later", .run_at = absl::Now() + absl::Hours(1)});
  db.Exec(absl::StrCat("UPDATE jobs SET run_at = now() - interval '90 seconds' WHERE id = ", old));

  auto depths = pool->Transact("depths", [](pg::Tx& tx) { return jobs::QueueDepths(tx); });
  REQUIRE(depths.ok());
  std::map<std::string, jobs::Depth> by_queue;
  for (const jobs::Depth& d : *depths) {
    if (d.state == jobs::State::kAvailable) by_queue[d.queue] = d;
  }
  REQUIRE(by_queue.count("aging"));
  CHECK(by_queue["aging"].count == 3);
  CHECK(by_queue["aging"].oldest_age_seconds >= 90);
  CHECK(by_queue["aging"].oldest_age_seconds < 150);
  // Scheduled for later: counted, but nothing waits yet.
  REQUIRE(by_queue.count("later"));
  CHECK(by_queue["later"].count == 1);
  CHECK(by_queue["later"].oldest_age_seconds == 0);

  // A worker's rescuer exports both, for every queue.
  jobs::Worker worker(*pool, db.connect(), FastOptions());
  worker.Register("test", [](jobs::JobContext&) { return absl::OkStatus(); });
  REQUIRE(worker.Start().ok());
  CHECK(WaitFor(10s, [] { return Gauge("c2d_jobs_queue_depth", "aging", "available") == 3; }));
  CHECK(Gauge("c2d_jobs_oldest_age_seconds", "aging", "available") >= 90);
  CHECK(Gauge("c2d_jobs_oldest_age_seconds", "later", "available") == 0);
}

TEST_CASE("jobs run in priority order, then in order of enqueueing", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  std::vector<int64_t> ids;
  for (int priority : {50, 10, 30, 10, 20}) ids.push_back(Enqueue(*pool, {.priority = priority}));
  jobs::Worker worker(*pool, db.connect(), FastOptions(1));
  std::mutex mu;
  std::vector<int64_t> order;
  worker.Register("test", [&](jobs::JobContext& ctx) {
    std::lock_guard lock(mu);
    order.push_back(ctx.job().id);
    return absl::OkStatus();
  });
  REQUIRE(worker.Start().ok());
  REQUIRE(WaitFor(20s, [&] {
    std::lock_guard lock(mu);
    return order.size() == 5;
  }));
  std::lock_guard lock(mu);
  CHECK(order == std::vector<int64_t>{ids[1], ids[3], ids[4], ids[2], ids[0]});
}

TEST_CASE("NOTIFY wakes an idle worker long before its next poll", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  jobs::WorkerOptions options = FastOptions();
  options.poll_interval = 60s;  // only a NOTIFY can start the job in time
  jobs::Worker worker(*pool, db.connect(), options);
  std::atomic<bool> ran{false};
  worker.Register("test", [&](jobs::JobContext&) {
    ran = true;
    return absl::OkStatus();
  });
  REQUIRE(worker.Start().ok());
  // Let the dispatcher go idle on its (long) poll wait first.
  absl::SleepFor(absl::Milliseconds(500));
  Enqueue(*pool, {});
  CHECK(WaitFor(15s, [&] { return ran.load(); }));
}

TEST_CASE("enqueue belongs to the caller's transaction", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  absl::Status s = pool->Transact("enqueue then fail", [&](pg::Tx& tx) -> absl::Status {
    auto r = jobs::Enqueue(tx, {.queue = "test", .kind = "test"});
    if (!r.ok()) return r.status();
    return absl::FailedPreconditionError("caller changed its mind");
  });
  CHECK(absl::IsFailedPrecondition(s));
  CHECK(db.Count("SELECT count(*) FROM jobs") == 0);
}

TEST_CASE("bad enqueue input is refused with a reason and changes nothing", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  auto try_enqueue = [&](jobs::NewJob job) {
    return pool->Transact("enqueue", [&](pg::Tx& tx) { return jobs::Enqueue(tx, job); }).status();
  };
  absl::Status bad_queue = try_enqueue({.queue = "Builder!", .kind = "build"});
  CHECK(absl::IsInvalidArgument(bad_queue));
  CHECK(std::string(bad_queue.message()).find("Builder!") != std::string::npos);
  CHECK(absl::IsInvalidArgument(try_enqueue({.queue = "test", .kind = ""})));
  CHECK(absl::IsInvalidArgument(try_enqueue({.queue = "test", .kind = "test", .payload = "[1]"})));
  CHECK(absl::IsInvalidArgument(try_enqueue({.queue = "test", .kind = "test", .payload = "{"})));
  CHECK(absl::IsInvalidArgument(try_enqueue({.queue = "test", .kind = "test", .max_attempts = 0})));
  CHECK(db.Count("SELECT count(*) FROM jobs") == 0);
}

TEST_CASE("a worker claims only kinds it handles", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  jobs::Worker worker(*pool, db.connect(), FastOptions());
  worker.Register("known", [](jobs::JobContext&) { return absl::OkStatus(); });
  REQUIRE(worker.Start().ok());
  int64_t unknown = Enqueue(*pool, {.kind = "unknown"});
  int64_t known = Enqueue(*pool, {.kind = "known"});
  REQUIRE(WaitState(*pool, known, jobs::State::kSucceeded));
  absl::SleepFor(absl::Milliseconds(500));
  CHECK(GetJob(*pool, unknown).state == jobs::State::kAvailable);
  CHECK(GetJob(*pool, unknown).attempts == 0);
}

TEST_CASE("shutdown past the grace period releases running jobs without counting the attempt",
          "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  jobs::WorkerOptions options = FastOptions(1);
  options.shutdown_grace = 300ms;
  int64_t id = Enqueue(*pool, {});
  {
    jobs::Worker worker(*pool, db.connect(), options);
    std::atomic<bool> running{false};
    worker.Register("test", [&](jobs::JobContext& ctx) -> absl::Status {
      running = true;
      while (!ctx.cancelled()) absl::SleepFor(absl::Milliseconds(10));
      return absl::CancelledError("interrupted by shutdown");
    });
    REQUIRE(worker.Start().ok());
    REQUIRE(WaitFor(10s, [&] { return running.load(); }));
    worker.Shutdown();
  }
  jobs::Job job = GetJob(*pool, id);
  CHECK(job.state == jobs::State::kAvailable);
  CHECK(job.attempts == 0);
  CHECK(job.locked_by.empty());
  // A new worker picks it up at once.
  jobs::Worker next(*pool, db.connect(), FastOptions());
  next.Register("test", [](jobs::JobContext&) { return absl::OkStatus(); });
  REQUIRE(next.Start().ok());
  REQUIRE(WaitState(*pool, id, jobs::State::kSucceeded));
  CHECK(GetJob(*pool, id).attempts == 1);
}

TEST_CASE("exactly one leader runs a duty and another takes over when it stops", "[jobs][leader]") {
  TestDatabase db;
  std::atomic<int> runs_a{0}, runs_b{0};
  auto a = std::make_unique<jobs::Leader>(db.connect(), "test-duty", 100ms, [&] { ++runs_a; });
  jobs::Leader b(db.connect(), "test-duty", 100ms, [&] { ++runs_b; });
  a->Start();
  REQUIRE(WaitFor(10s, [&] { return a->is_leader(); }));
  b.Start();
  absl::SleepFor(absl::Seconds(1));
  CHECK(runs_a > 3);
  CHECK(runs_b == 0);
  CHECK_FALSE(b.is_leader());
  a->Stop();
  const int after_stop = runs_a;
  REQUIRE(WaitFor(10s, [&] { return b.is_leader(); }));
  REQUIRE(WaitFor(5s, [&] { return runs_b > 0; }));
  CHECK(runs_a == after_stop);
  b.Stop();
}

TEST_CASE("a leader whose session dies is told it lost the duty", "[jobs][leader]") {
  TestDatabase db;
  std::atomic<int> runs_a{0}, lost_a{0}, runs_b{0}, lost_b{0};
  jobs::Leader a(
      db.connect(), "test-duty", 100ms, [&] { ++runs_a; }, [&] { ++lost_a; });
  a.Start();
  REQUIRE(WaitFor(10s, [&] { return runs_a > 0; }));
  jobs::Leader b(
      db.connect(), "test-duty", 100ms, [&] { ++runs_b; }, [&] { ++lost_b; });
  b.Start();
  absl::SleepFor(absl::Milliseconds(500));
  CHECK(lost_a == 0);  // leading on, pass after pass
  // The leader's session dies, and the lock is free for whoever asks next.
  REQUIRE(testing::TerminateLockHolders(db, jobs::Leader::LockKey("test-duty")) == 1);
  REQUIRE(WaitFor(10s, [&] { return lost_a == 1; }));
  CHECK(WaitFor(10s, [&] { return a.is_leader() != b.is_leader(); }));
  CHECK(lost_a == 1);
  CHECK(lost_b == 0);
  b.Stop();
  a.Stop();
  CHECK(lost_b == 0);  // stopping is not losing
}

}  // namespace
}  // namespace c2d
