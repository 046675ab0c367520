// The job queue across real processes: many workers in two processes, and a
// worker process killed with SIGKILL while it holds leases.

#include <signal.h>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "libs/jobs/queue.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using testing::Subprocess;
using testing::TestDatabase;

std::string LogPath(const std::string& name) {
  const char* tmp = std::getenv("C2D_TEST_TMP");
  return absl::StrCat(tmp ? tmp : "/tmp", "/", name, ".log");
}

void EnqueueMany(pg::Pool& pool, int n) {
  auto s = pool.Transact("enqueue", [&](pg::Tx& tx) -> absl::Status {
    for (int i = 0; i < n; ++i) {
      auto e = jobs::Enqueue(
          tx, {.queue = "test", .kind = "test", .payload = absl::StrCat("{\"n\":", i, "}")});
      if (!e.ok()) return e.status();
    }
    return absl::OkStatus();
  });
  REQUIRE(s.ok());
}

std::map<std::string, std::string> WorkerEnv(const TestDatabase& db, const std::string& lease) {
  return {{"C2D_DATABASE_URL", db.url()},
          {"C2D_WORKERS", "4"},
          {"C2D_JOB_LEASE", lease},
          {"C2D_JOB_POLL_INTERVAL", "500ms"},
          {"C2D_SHUTDOWN_GRACE", "5s"}};
}

TEST_CASE("10000 jobs over 8 workers in 2 processes are each handled exactly once",
          "[jobs][processes]") {
  TestDatabase db;
  db.Exec("CREATE TABLE handled (job_id bigint NOT NULL, worker text NOT NULL)");
  auto pool = db.NewPool();
  EnqueueMany(*pool, 10'000);

  Subprocess a({C2D_TEST_JOB_WORKER, "record"}, WorkerEnv(db, "30s"), LogPath("10k-a"));
  Subprocess b({C2D_TEST_JOB_WORKER, "record"}, WorkerEnv(db, "30s"), LogPath("10k-b"));

  bool done = testing::WaitFor(240s, [&] {
    return db.Count("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 10'000;
  });
  INFO(a.Output().substr(0, 4000));
  REQUIRE(done);
  CHECK(db.Count("SELECT count(*) FROM handled") == 10'000);
  CHECK(db.Count("SELECT count(DISTINCT job_id) FROM handled") == 10'000);
  CHECK(db.Count("SELECT count(*) FROM jobs WHERE attempts <> 1") == 0);
  // Both processes took part.
  CHECK(db.Count("SELECT count(DISTINCT worker) FROM handled") == 2);

  a.Signal(SIGTERM);
  b.Signal(SIGTERM);
  CHECK(a.Wait(30s) == 0);
  CHECK(b.Wait(30s) == 0);
}

TEST_CASE("jobs leased by a SIGKILLed worker are rescued after lease expiry and complete",
          "[jobs][processes]") {
  TestDatabase db;
  db.Exec("CREATE TABLE handled (job_id bigint NOT NULL, worker text NOT NULL)");
  auto pool = db.NewPool();
  EnqueueMany(*pool, 20);

  Subprocess stuck({C2D_TEST_JOB_WORKER, "block"}, WorkerEnv(db, "2s"), LogPath("kill-a"));
  REQUIRE(testing::WaitFor(
      30s, [&] { return db.Count("SELECT count(*) FROM jobs WHERE state = 'running'") == 4; }));
  const std::string held =
      db.Scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM jobs WHERE state = 'running'");
  stuck.Signal(SIGKILL);
  REQUIRE(stuck.Wait(10s) == 128 + SIGKILL);
  // The dead worker's leases still look held until they expire.
  CHECK(db.Count("SELECT count(*) FROM jobs WHERE state = 'running'") == 4);

  Subprocess rescuer({C2D_TEST_JOB_WORKER, "record"}, WorkerEnv(db, "2s"), LogPath("kill-b"));
  bool done = testing::WaitFor(
      60s, [&] { return db.Count("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 20; });
  INFO(rescuer.Output().substr(0, 4000));
  REQUIRE(done);
  CHECK(db.Count("SELECT count(DISTINCT job_id) FROM handled") == 20);
  CHECK(db.Count("SELECT count(*) FROM handled") == 20);
  // The four rescued jobs ran twice (the lost attempt counts) and say why.
  CHECK(db.Count(absl::StrCat("SELECT count(*) FROM jobs WHERE attempts = 2 AND id IN (", held,
                              ") AND last_error LIKE 'lease expired%'")) == 4);
  rescuer.Signal(SIGTERM);
  CHECK(rescuer.Wait(30s) == 0);
}

}  // namespace
}  // namespace c2d
