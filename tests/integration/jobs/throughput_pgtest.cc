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
  batch.push_back(Job("{}", "k2"));  // the same key twice in the batch
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
  CHECK(db.Count("SELECT count(*) FROM jobs") == 1 + 50 + 1);
  CHECK(db.Scalar(absl::StrCat("SELECT payload->>'i' FROM jobs WHERE id = ", (*r)[7].id)) == "7");

  // A batch without keys takes the plain insert: ids in order too.
  std::vector<jobs::NewJob> plain;
  for (int i = 0; i < 10; ++i) plain.push_back(Job(absl::StrCat("{\"p\":", i, "}")));
  auto p = many(plain);
  REQUIRE(p.ok());
  REQUIRE(p->size() == 10);
  for (int i = 0; i < 10; ++i) {
    CHECK((*p)[i].created);
    if (i > 0) CHECK((*p)[i].id > (*p)[i - 1].id);
    CHECK(db.Scalar(absl::StrCat("SELECT payload->>'p' FROM jobs WHERE id = ", (*p)[i].id)) ==
          std::to_string(i));
  }
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
    return jobs::RecordOutcomes(tx, "a",
                                {{.claim = {lost, 1}, .kind = K::kSucceeded},
                                 {.claim = {kept, 1},
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
    return jobs::RecordOutcomes(tx, "b", {{.claim = {lost, 2}, .kind = K::kSucceeded}});
  });
  REQUIRE(mine.ok());
  CHECK((*mine)[0].held);
  CHECK(db.Scalar(absl::StrCat("SELECT state FROM jobs WHERE id = ", lost)) == "succeeded");
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
