// c2d-bench-jobs DATABASE_URL: the job queue's figures against a migrated,
// otherwise empty database (tools/bench/jobs starts a PostgreSQL with its
// default settings for it), one line each:
//
//   c2d enqueue-single [pg=LABEL]: N jobs/s   10,000 enqueues, a transaction each
//                                             (jobs::Enqueue(pool, job): one
//                                             statement, committed durably)
//   c2d enqueue-bulk [pg=LABEL]: N jobs/s     100,000 in transactions of 1,000
//   c2d burn-down [pg=LABEL]: N jobs/s        those 100,000 no-op jobs run by one
//                                             worker with the services' default
//                                             settings, until the last completion
//                                             is visible in the database
//   c2d pickup-p50 [pg=LABEL]: N ms           200 jobs enqueued one at a time 20 ms
//   c2d pickup-p99 [pg=LABEL]: N ms           apart to an idle worker: from the
//                                             enqueue call to the handler's start
//
// plus the burn-down's WAL fsyncs and WAL records per job (pg_stat_wal), and
// the pickup counted from the enqueue's commit instead of its call, and the
// same enqueue calls' own time with no worker listening (what this machine's
// durable commit after an idle spell costs).
// LABEL is C2D_BENCH_PG_LABEL ("default").

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/jobs/queue.h"
#include "libs/jobs/worker.h"
#include "libs/pg/pool.h"
#include "nlohmann/json.hpp"
#include "tools/bench/must.h"
#include "tools/bench/stats.h"

namespace {

using namespace c2d;
using namespace std::chrono_literals;

constexpr char kQueue[] = "bench";
constexpr char kKind[] = "noop";

using bench::Die;
using bench::Must;

std::string label;

void Print(const char* figure, double value, const char* unit) {
  std::printf("c2d %s [pg=%s]: %.*f %s\n", figure, label.c_str(), value < 100 ? 2 : 0, value, unit);
  std::fflush(stdout);
}

jobs::NewJob Noop(std::string payload = "{}") {
  jobs::NewJob j;
  j.queue = kQueue;
  j.kind = kKind;
  j.payload = std::move(payload);
  return j;
}

void Reset(pg::Pool& pool) {
  Must(pool.Transact("reset",
                     [](pg::Tx& tx) {
                       tx.work().exec0("TRUNCATE jobs");
                       return absl::OkStatus();
                     }),
       "truncate jobs");
}

int64_t Count(pg::Pool& pool, const char* where) {
  return Must(pool.Transact("count",
                            [&](pg::Tx& tx) -> absl::StatusOr<int64_t> {
                              return tx.work()
                                  .exec1(absl::StrCat("SELECT count(*) FROM jobs WHERE ", where))[0]
                                  .as<int64_t>();
                            }),
              "count jobs");
}

double EnqueueSingle(pg::Pool& pool, int n) {
  Reset(pool);
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) Must(jobs::Enqueue(pool, Noop()), "enqueue");
  return n / absl::ToDoubleSeconds(absl::Now() - start);
}

double EnqueueBulk(pg::Pool& pool, int n, int chunk) {
  Reset(pool);
  std::vector<jobs::NewJob> batch(chunk, Noop());
  const absl::Time start = absl::Now();
  for (int done = 0; done < n; done += chunk) {
    Must(pool.Transact("enqueue many", [&](pg::Tx& tx) { return jobs::EnqueueMany(tx, batch); }),
         "enqueue many");
  }
  return n / absl::ToDoubleSeconds(absl::Now() - start);
}

struct Wal {
  double syncs = 0, records = 0;
};

// The cluster's WAL counters; backends report theirs when they end, so the
// workers' connections are closed before this is read.
Wal ReadWal(const pg::ConnectOptions& connect) {
  pg::Pool pool({.connect = connect, .size = 1});
  absl::SleepFor(absl::Milliseconds(300));
  return Must(pool.Transact("wal",
                            [](pg::Tx& tx) -> absl::StatusOr<Wal> {
                              pqxx::row r = tx.work().exec1(
                                  "SELECT wal_sync::float8, wal_records::float8 FROM pg_stat_wal");
                              return Wal{r[0].as<double>(), r[1].as<double>()};
                            }),
              "read pg_stat_wal");
}

// Runs the jobs waiting in the table with one worker of default settings;
// jobs/s until the last completion is visible.
double BurnDown(const pg::ConnectOptions& connect, int n, Wal* per_job) {
  const Wal before = ReadWal(connect);
  double rate = 0;
  {
    pg::PoolOptions options = Must(pg::PoolOptions::FromEnv("c2d-bench-jobs"), "pool options");
    options.connect = connect;
    pg::Pool pool(options);
    pg::Pool watcher({.connect = connect, .size = 1});
    jobs::WorkerOptions wo = Must(jobs::WorkerOptions::FromEnv(kQueue), "worker options");
    jobs::Worker worker(pool, connect, wo);
    worker.Register(kKind, [](jobs::JobContext&) { return absl::OkStatus(); });
    const absl::Time start = absl::Now();
    Must(worker.Start(), "start the worker");
    const absl::Time deadline = start + absl::Minutes(10);
    // Polled gently (the machine is the worker's); the end is the last
    // completion's own time.
    while (Count(watcher, "state IN ('available', 'running')") > 0) {
      if (absl::Now() > deadline) Die("the burn-down did not finish in 10 minutes");
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (Count(watcher, "state = 'succeeded'") != n) Die("the burn-down lost jobs");
    const absl::Time end = absl::FromUnixMicros(
        Must(watcher.Transact("last completion",
                              [](pg::Tx& tx) -> absl::StatusOr<int64_t> {
                                return tx.work()
                                    .exec1(
                                        "SELECT (extract(epoch FROM max(finished_at)) * 1000000)"
                                        "::bigint FROM jobs")[0]
                                    .as<int64_t>();
                              }),
             "read the last completion"));
    rate = n / absl::ToDoubleSeconds(end - start);
    worker.Shutdown();
  }
  const Wal after = ReadWal(connect);
  per_job->syncs = (after.syncs - before.syncs) / n;
  per_job->records = (after.records - before.records) / n;
  return rate;
}

double P50(const std::vector<double>& sorted) { return sorted[sorted.size() / 2]; }
double P99(const std::vector<double>& sorted) { return sorted[sorted.size() * 99 / 100]; }

// Latencies (ms) of `n` jobs enqueued `gap` apart to an idle worker, each sorted.
struct PickupTimes {
  std::vector<double> from_call;    // enqueue call -> handler start
  std::vector<double> from_commit;  // enqueue committed -> handler start
  std::vector<double> enqueue;      // the enqueue call itself
  std::vector<double> alone;        // the same, before any worker listens
};

// `n` enqueue calls `gap` apart to a queue nobody listens to: what a
// durable commit after an idle spell costs on this machine (ms, sorted).
std::vector<double> EnqueueAlone(pg::Pool& pool, int n, absl::Duration gap) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    const absl::Time start = absl::Now();
    Must(jobs::Enqueue(pool, {.queue = "nobody", .kind = kKind}), "enqueue");
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    absl::SleepFor(gap);
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

PickupTimes Pickup(const pg::ConnectOptions& connect, int n, absl::Duration gap) {
  pg::PoolOptions options = Must(pg::PoolOptions::FromEnv("c2d-bench-jobs"), "pool options");
  options.connect = connect;
  pg::Pool pool(options);
  Reset(pool);
  PickupTimes t;
  t.alone = EnqueueAlone(pool, n, gap);
  std::mutex mu;
  std::map<int, absl::Time> started;
  jobs::Worker worker(pool, connect, Must(jobs::WorkerOptions::FromEnv(kQueue), "options"));
  worker.Register(kKind, [&](jobs::JobContext& ctx) {
    const absl::Time now = absl::Now();
    std::lock_guard<std::mutex> lock(mu);
    started[nlohmann::json::parse(ctx.job().payload)["i"].get<int>()] = now;
    return absl::OkStatus();
  });
  Must(worker.Start(), "start the worker");
  absl::SleepFor(absl::Seconds(1));  // idle: its first claims and listener are done
  std::vector<absl::Time> sent(n), committed(n);
  for (int i = 0; i < n; ++i) {
    sent[i] = absl::Now();
    Must(jobs::Enqueue(pool, Noop(absl::StrCat("{\"i\":", i, "}"))), "enqueue");
    committed[i] = absl::Now();
    absl::SleepFor(gap);
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (static_cast<int>(started.size()) == n) break;
    }
    if (absl::Now() > deadline) Die("pickup: not every job started within 30 s");
    absl::SleepFor(absl::Milliseconds(10));
  }
  worker.Shutdown();
  for (int i = 0; i < n; ++i) {
    t.from_call.push_back(absl::ToDoubleMilliseconds(started[i] - sent[i]));
    t.from_commit.push_back(absl::ToDoubleMilliseconds(started[i] - committed[i]));
    t.enqueue.push_back(absl::ToDoubleMilliseconds(committed[i] - sent[i]));
  }
  for (auto* v : {&t.from_call, &t.from_commit, &t.enqueue}) std::sort(v->begin(), v->end());
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) Die("usage: c2d-bench-jobs DATABASE_URL (run tools/bench/jobs)");
  const char* l = std::getenv("C2D_BENCH_PG_LABEL");
  label = l != nullptr && *l != '\0' ? l : "default";
  pg::ConnectOptions connect{.url = argv[1], .application_name = "c2d-bench-jobs"};
  {
    pg::Pool pool({.connect = connect, .size = 2});
    Print("enqueue-single", EnqueueSingle(pool, 10'000), "jobs/s");
    Print("enqueue-bulk", EnqueueBulk(pool, 100'000, 1'000), "jobs/s");
    if (Count(pool, "state = 'available'") != 100'000) Die("the bulk enqueue lost jobs");
  }
  Wal wal;
  Print("burn-down", BurnDown(connect, 100'000, &wal), "jobs/s");
  const PickupTimes pickup = Pickup(connect, 200, absl::Milliseconds(20));
  Print("pickup-p50", P50(pickup.from_call), "ms");
  Print("pickup-p99", P99(pickup.from_call), "ms");
  std::printf("  burn-down WAL: %.3f fsyncs per job, %.1f records per job\n", wal.syncs,
              wal.records);
  std::printf(
      "  pickup: the enqueue call took %.2f ms (p50), %.2f ms (p99); from its commit "
      "to the handler's start %.2f ms (p50), %.2f ms (p99)\n",
      P50(pickup.enqueue), P99(pickup.enqueue), P50(pickup.from_commit), P99(pickup.from_commit));
  std::printf(
      "  pickup: the same enqueue call with no worker listening took %.2f ms (p50), "
      "%.2f ms (p99)\n",
      P50(pickup.alone), P99(pickup.alone));
  return 0;
}
