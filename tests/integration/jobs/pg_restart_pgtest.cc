// PostgreSQL restarted in the middle of a run: workers reconnect and every
// job completes. This test restarts the shared test server, so CTest runs it
// alone (RUN_SERIAL).

#include <catch2/catch.hpp>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/jobs/queue.h"
#include "libs/jobs/worker.h"
#include "tests/support/pg_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;

TEST_CASE("workers ride out a PostgreSQL restart and lose no job", "[jobs][restart]") {
  const char* pgctl = std::getenv("C2D_TEST_PG_CTL");
  const char* pgdir = std::getenv("C2D_TEST_PG_DIR");
  if (pgctl == nullptr || pgdir == nullptr) {
    FAIL("C2D_TEST_PG_CTL / C2D_TEST_PG_DIR unset: run through tools/test");
  }
  testing::TestDatabase db;
  db.Exec("CREATE TABLE handled (job_id bigint NOT NULL)");
  auto pool = db.NewPool();
  constexpr int kJobs = 3000;
  REQUIRE(pool->Transact("enqueue",
                         [&](pg::Tx& tx) -> absl::Status {
                           for (int i = 0; i < kJobs; ++i) {
                             auto e = jobs::Enqueue(
                                 tx, {.queue = "test", .kind = "test", .max_attempts = 50});
                             if (!e.ok()) return e.status();
                           }
                           return absl::OkStatus();
                         })
              .ok());

  jobs::WorkerOptions options;
  options.queue = "test";
  options.concurrency = 4;
  options.lease = 10s;
  options.poll_interval = 200ms;
  options.backoff_base = 50ms;
  options.backoff_max = 1s;
  jobs::Worker worker(*pool, db.connect(), options);
  static constexpr pg::Statement kRecord{"restart_record",
                                         "INSERT INTO handled (job_id) VALUES ($1)"};
  worker.Register("test", [&](jobs::JobContext& ctx) {
    // A little work each, so the run is still going when the server restarts.
    absl::SleepFor(absl::Milliseconds(5));
    return pool->Transact("record", [&](pg::Tx& tx) {
      tx.Exec(kRecord, ctx.job().id);
      return absl::OkStatus();
    });
  });
  REQUIRE(worker.Start().ok());

  auto succeeded = [&] {
    try {
      return db.Count("SELECT count(*) FROM jobs WHERE state = 'succeeded'");
    } catch (const std::exception&) {
      return int64_t{-1};  // server restarting
    }
  };
  REQUIRE(testing::WaitFor(60s, [&] { return succeeded() >= 300; }));
  const std::string cmd = absl::StrCat(pgctl, " ", pgdir, " restart");
  REQUIRE(std::system(cmd.c_str()) == 0);
  const int64_t at_restart = succeeded();
  INFO("succeeded when the server was back: " << at_restart);
  CHECK(at_restart < kJobs);  // the restart really hit the middle of the run

  REQUIRE(testing::WaitFor(180s, [&] { return succeeded() == kJobs; }));
  CHECK(db.Count("SELECT count(DISTINCT job_id) FROM handled") == kJobs);
  CHECK(db.Count("SELECT count(*) FROM jobs WHERE state <> 'succeeded'") == 0);
  worker.Shutdown();
}

}  // namespace
}  // namespace c2d
