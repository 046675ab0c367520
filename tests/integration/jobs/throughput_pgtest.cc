// The job queue's batched paths: bulk enqueue (order, unique keys, all or
// nothing), outcomes recorded in groups yet matched to their attempt, a
// prefetch that never hoards long jobs, and the next scheduled job found
// through an index whatever the statistics say.

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/jobs/queue.h"
#include "libs/jobs/worker.h"
#include "tests/support/pg_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using testing::TestDatabase;
using testing::WaitFor;

jobs::NewJob Job(std::string payload = "{}", std::string key = "") {
  return {.queue = "test", .kind = "test", .payload = std::move(payload), .unique_key = key};
}

TEST_CASE("bulk enqueue keeps the batch's order and unique keys, and is all or nothing", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  auto many = [&](const std::vector<jobs::NewJob>& batch) {
    return pool->Transact("enqueue", [&](pg::Tx& tx) { return jobs::EnqueueMany(tx, batch); });
  };
  auto live = many({Job("{}", "k1")});
  REQUIRE(live.ok());

  std::vector<jobs::NewJob> batch;
  for (int i = 0; i < 50; ++i) batch.push_back(Job(absl::StrCat("{\"i\":", i, "}")));
  batch.push_back(Job("{}", "k1"));  // a live job holds the key
  batch.push_back(Job("{}", "k2"));
  batch.push_back(Job("{}", "k2"));       // the same key twice in the batch
  batch.push_back(Job("{}", "k\"3,\\"));  // a key that needs quoting
  auto r = many(batch);
  REQUIRE(r.ok());
  REQUIRE(r->size() == batch.size());
  for (int i = 0; i < 50; ++i) {
    CHECK((*r)[i].created);
    if (i > 0) CHECK((*r)[i].id > (*r)[i - 1].id);  // ids in the batch's order
  }
  CHECK_FALSE((*r)[50].created);
  CHECK((*r)[50].id == (*live)[0].id);
  CHECK((*r)[51].created);
  CHECK_FALSE((*r)[52].created);
  CHECK((*r)[52].id == (*r)[51].id);
  CHECK((*r)[53].created);
  CHECK(db.Scalar(absl::StrCat("SELECT unique_key FROM jobs WHERE id = ", (*r)[53].id)) ==
        "k\"3,\\");
  db.Exec(absl::StrCat("DELETE FROM jobs WHERE id = ", (*r)[53].id));
  CHECK(db.Count("SELECT count(*) FROM jobs") == 1 + 50 + 1);
  CHECK(db.Scalar(absl::StrCat("SELECT payload->>'i' FROM jobs WHERE id = ", (*r)[7].id)) == "7");

  // A batch without keys takes the plain insert: ids in order too, and
  // every field as given, quotes, backslashes and braces included.
  std::vector<jobs::NewJob> plain;
  for (int i = 0; i < 10; ++i) plain.push_back(Job(absl::StrCat("{\"p\":", i, "}")));
  plain[3].payload = R"({"p": 3, "s": "a\"b\\c,{d}\u00e9 NULL"})";
  plain[4].priority = 7;
  plain[4].max_attempts = 2;
  plain[4].run_at = absl::FromUnixSeconds(4'000'000'000);
  auto p = many(plain);
  REQUIRE(p.ok());
  REQUIRE(p->size() == 10);
  for (int i = 0; i < 10; ++i) {
    CHECK((*p)[i].created);
    if (i > 0) CHECK((*p)[i].id > (*p)[i - 1].id);
    CHECK(db.Scalar(absl::StrCat("SELECT payload->>'p' FROM jobs WHERE id = ", (*p)[i].id)) ==
          std::to_string(i));
  }
  CHECK(db.Scalar(absl::StrCat("SELECT payload->>'s' FROM jobs WHERE id = ", (*p)[3].id)) ==
        "a\"b\\c,{d}\u00e9 NULL");
  CHECK(db.Scalar(absl::StrCat("SELECT priority || ' ' || max_attempts || ' ' || "
                               "extract(epoch FROM run_at)::bigint FROM jobs WHERE id = ",
                               (*p)[4].id)) == "7 2 4000000000");
  CHECK(db.Scalar(absl::StrCat("SELECT run_at <= now() FROM jobs WHERE id = ", (*p)[5].id)) == "t");
  db.Exec("DELETE FROM jobs WHERE payload ? 'p'");

  // One malformed job: nothing of the batch goes in.
  std::vector<jobs::NewJob> bad = {Job(), Job("[1]"), Job()};
  auto refused = many(bad);
  CHECK(absl::IsInvalidArgument(refused.status()));
  CHECK(db.Count("SELECT count(*) FROM jobs") == 52);

  // And the jobs run.
  jobs::Worker worker(*pool, db.connect(), {.queue = "test", .poll_interval = 200ms});
  worker.Register("test", [](jobs::JobContext&) { return absl::OkStatus(); });
  REQUIRE(worker.Start().ok());
  CHECK(WaitFor(
      20s, [&] { return db.Count("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 52; }));
}

TEST_CASE("a stale attempt's outcome changes nothing, in a group with others", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  auto ids = pool->Transact("enqueue", [&](pg::Tx& tx) {
    return jobs::EnqueueMany(tx, {Job(), Job()});
  });
  REQUIRE(ids.ok());
  auto claim = [&](const char* worker, int n) {
    auto c = pool->Transact(
        "claim", [&](pg::Tx& tx) { return jobs::Claim(tx, "test", {"test"}, worker, n, 30s); });
    REQUIRE(c.ok());
    return *c;
  };
  REQUIRE(claim("a", 2).size() == 2);
  // Worker a loses the first job's lease; b takes it over (attempt 2).
  const int64_t lost = (*ids)[0].id, kept = (*ids)[1].id;
  db.Exec(
      absl::StrCat("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = ", lost));
  REQUIRE(
      pool->Transact("rescue", [](pg::Tx& tx) { return jobs::RescueExpired(tx, 10); })->size() ==
      1);
  REQUIRE(claim("b", 1).at(0).attempts == 2);

  // a's late outcomes, in one group: the lost job's changes nothing.
  using K = jobs::Outcome::Kind;
  auto recorded = pool->Transact("record", [&](pg::Tx& tx) {
    return jobs::RecordOutcomes(tx, {{.claim = {lost, 1, "a"}, .kind = K::kSucceeded},
                                     {.claim = {kept, 1, "a"},
                                      .kind = K::kFailed,
                                      .error = std::string("bad\0byte", 8),
                                      .retry_delay = 60s}});
  });
  REQUIRE(recorded.ok());
  CHECK_FALSE((*recorded)[0].held);
  CHECK((*recorded)[1].held);
  CHECK((*recorded)[1].state == jobs::State::kAvailable);
  CHECK(db.Scalar(absl::StrCat("SELECT state || locked_by FROM jobs WHERE id = ", lost)) ==
        "runningb");
  CHECK(db.Scalar(absl::StrCat("SELECT last_error FROM jobs WHERE id = ", kept)) == "badbyte");
  // b's own outcome is recorded.
  auto mine = pool->Transact("record", [&](pg::Tx& tx) {
    return jobs::RecordOutcomes(tx, {{.claim = {lost, 2, "b"}, .kind = K::kSucceeded}});
  });
  REQUIRE(mine.ok());
  CHECK((*mine)[0].held);
  CHECK(db.Scalar(absl::StrCat("SELECT state FROM jobs WHERE id = ", lost)) == "succeeded");
}

TEST_CASE("a job enqueued on its own is committed and wakes an idle worker", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  std::atomic<int> ran{0};
  // Polling too rarely to matter: only the NOTIFY wakes the worker in time.
  jobs::Worker worker(*pool, db.connect(), {.queue = "test", .poll_interval = 600s});
  worker.Register("test", [&](jobs::JobContext&) {
    ++ran;
    return absl::OkStatus();
  });
  REQUIRE(worker.Start().ok());
  absl::SleepFor(absl::Milliseconds(300));  // the first poll is over
  auto e = jobs::Enqueue(*pool, Job("{}", "solo"));
  REQUIRE(e.ok());
  CHECK(e->created);
  CHECK(WaitFor(10s, [&] { return ran.load() == 1; }));
  CHECK(db.Scalar(absl::StrCat("SELECT state FROM jobs WHERE id = ", e->id)) == "succeeded");
  // A unique key a live job holds gives that job.
  db.Exec("INSERT INTO jobs (queue, kind, unique_key) VALUES ('held', 'test', 'k')");
  auto first = jobs::Enqueue(*pool, {.queue = "held", .kind = "test", .unique_key = "k"});
  REQUIRE(first.ok());
  CHECK_FALSE(first->created);
  CHECK(absl::IsInvalidArgument(jobs::Enqueue(*pool, Job("[]")).status()));
  worker.Shutdown();
}

// Claims commit without waiting for the disk, so a crash of PostgreSQL can
// undo one; the job is then claimed again under the same attempt number.
// Simulated here by undoing the claim's row change by hand.
void UndoClaim(TestDatabase& db, int64_t id) {
  db.Exec(absl::StrCat(
      "UPDATE jobs SET state = 'available', attempts = attempts - 1, locked_by = NULL, "
      "lease_until = NULL, started_at = NULL WHERE id = ",
      id));
}

TEST_CASE("a claim undone by a database crash and made again is a new claim", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  auto ids = pool->Transact("enqueue", [&](pg::Tx& tx) { return jobs::EnqueueMany(tx, {Job()}); });
  REQUIRE(ids.ok());
  const int64_t id = (*ids)[0].id;
  auto claim = [&](const char* holder) {
    auto c = pool->Read(
        "claim", [&](pg::Tx& tx) { return jobs::Claim(tx, "test", {"test"}, holder, 1, 30s); });
    REQUIRE(c.ok());
    REQUIRE(c->size() == 1);
    return c->at(0);
  };
  const jobs::Job first = claim("w/1");
  UndoClaim(db, id);
  const jobs::Job second = claim("w/2");
  REQUIRE(second.attempts == first.attempts);  // the same attempt number, handed out twice
  CHECK(second.locked_by == "w/2");

  // The first claim's heartbeat and outcome change nothing.
  const jobs::ClaimRef stale{id, first.attempts, "w/1"}, live{id, second.attempts, "w/2"};
  auto held =
      pool->Read("heartbeat", [&](pg::Tx& tx) { return jobs::Heartbeat(tx, {stale}, 30s); });
  REQUIRE(held.ok());
  CHECK(held->empty());
  using K = jobs::Outcome::Kind;
  auto recorded = pool->Read("record", [&](pg::Tx& tx) {
    return jobs::RecordOutcomes(tx, {{.claim = stale, .kind = K::kFailed, .error = "stale"}});
  });
  REQUIRE(recorded.ok());
  CHECK_FALSE((*recorded)[0].held);
  CHECK(db.Scalar(absl::StrCat("SELECT state || ' ' || locked_by FROM jobs WHERE id = ", id)) ==
        "running w/2");
  held = pool->Read("heartbeat", [&](pg::Tx& tx) { return jobs::Heartbeat(tx, {live}, 30s); });
  REQUIRE(held.ok());
  CHECK(*held == std::vector<int64_t>{id});
  recorded = pool->Read("record", [&](pg::Tx& tx) {
    return jobs::RecordOutcomes(tx, {{.claim = live, .kind = K::kSucceeded}});
  });
  REQUIRE(recorded.ok());
  CHECK((*recorded)[0].held);
  CHECK(db.Scalar(absl::StrCat("SELECT state FROM jobs WHERE id = ", id)) == "succeeded");
}

TEST_CASE("a worker whose claim a database crash undid stops that run and finishes the job once",
          "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  auto ids = pool->Transact("enqueue", [&](pg::Tx& tx) { return jobs::EnqueueMany(tx, {Job()}); });
  REQUIRE(ids.ok());
  std::mutex mu;
  std::vector<std::string> holders;  // each run's claim
  std::atomic<bool> first_stopped{false};
  jobs::Worker worker(*pool, db.connect(),
                      {.queue = "test", .concurrency = 2, .poll_interval = 50ms});
  worker.Register("test", [&](jobs::JobContext& ctx) {
    bool first;
    {
      std::lock_guard<std::mutex> lock(mu);
      holders.push_back(ctx.job().locked_by);
      first = holders.size() == 1;
    }
    if (!first) return absl::OkStatus();
    // The first run waits to be told its claim is gone.
    while (!ctx.cancelled()) absl::SleepFor(absl::Milliseconds(5));
    first_stopped = true;
    return absl::CancelledError("claim lost");
  });
  REQUIRE(worker.Start().ok());
  REQUIRE(WaitFor(10s, [&] {
    std::lock_guard<std::mutex> lock(mu);
    return holders.size() == 1;
  }));
  UndoClaim(db, (*ids)[0].id);
  CHECK(WaitFor(10s, [&] { return first_stopped.load(); }));
  CHECK(WaitFor(10s, [&] {
    return db.Scalar(absl::StrCat("SELECT state FROM jobs WHERE id = ", (*ids)[0].id)) ==
           "succeeded";
  }));
  worker.Shutdown();
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(holders.size() == 2);
  CHECK(holders[0] != holders[1]);
  CHECK(db.Scalar(absl::StrCat("SELECT attempts FROM jobs WHERE id = ", (*ids)[0].id)) == "1");
}

TEST_CASE("long jobs are not prefetched: a second worker runs the second at once", "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  std::mutex mu;
  std::set<std::string> ran_on;
  std::atomic<int> running{0}, most{0};
  auto handler = [&](const char* name) {
    return [&, name](jobs::JobContext&) {
      const int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        ran_on.insert(name);
      }
      absl::SleepFor(absl::Seconds(1));
      --running;
      return absl::OkStatus();
    };
  };
  REQUIRE(pool->Transact("enqueue",
                         [&](pg::Tx& tx) {
                           return jobs::EnqueueMany(tx, {Job(), Job()});
                         })
              .ok());
  jobs::Worker a(*pool, db.connect(), {.queue = "test", .concurrency = 1});
  a.Register("test", handler("a"));
  REQUIRE(a.Start().ok());
  REQUIRE(WaitFor(10s, [&] { return running.load() == 1; }));
  jobs::Worker b(*pool, db.connect(), {.queue = "test", .concurrency = 1});
  b.Register("test", handler("b"));
  REQUIRE(b.Start().ok());
  CHECK(WaitFor(
      20s, [&] { return db.Count("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 2; }));
  CHECK(most == 2);
  std::lock_guard<std::mutex> lock(mu);
  CHECK(ran_on == std::set<std::string>{"a", "b"});
}

TEST_CASE("the next scheduled job is found through an index whatever the statistics say",
          "[jobs]") {
  TestDatabase db;
  auto pool = db.NewPool();
  // Many finished jobs, a few scheduled ones, fresh statistics.
  db.Exec(
      "INSERT INTO jobs (queue, kind, state, finished_at) "
      "SELECT 'test', 'test', 'succeeded', now() FROM generate_series(1, 50000)");
  std::vector<jobs::NewJob> later;
  for (int i = 1; i <= 3; ++i) {
    jobs::NewJob j = Job();
    j.run_at = absl::Now() + absl::Minutes(i);
    later.push_back(j);
  }
  REQUIRE(pool->Transact("enqueue", [&](pg::Tx& tx) { return jobs::EnqueueMany(tx, later); }).ok());
  db.Exec("ANALYZE jobs");
  auto plan = pool->Transact("next", [&](pg::Tx& tx) -> absl::StatusOr<std::string> {
    auto next = jobs::NextRunAt(tx, "test", {"test"});
    if (!next.ok()) return next.status();
    if (!next->has_value() || **next - absl::Now() > absl::Seconds(61)) {
      return absl::InternalError("not the first scheduled job");
    }
    // The plan of the very statement NextRunAt prepared on this connection.
    std::string text;
    for (const auto& row : tx.work().exec("EXPLAIN EXECUTE jobs_next_run_at('test', '{test}')")) {
      text += row[0].as<std::string>() + "\n";
    }
    return text;
  });
  REQUIRE(plan.ok());
  INFO(*plan);
  CHECK(plan->find("jobs_scheduled_idx") != std::string::npos);
  CHECK(plan->find("Seq Scan") == std::string::npos);
}

}  // namespace
}  // namespace c2d
