#include "libs/jobs/worker.h"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/env.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/jobs/backoff.h"
#include "libs/jobs/job_metrics.h"
#include "libs/metrics/metrics.h"

namespace c2d::jobs {
namespace {

using std::chrono::milliseconds;

constexpr absl::Duration kRecordRetryPause = absl::Milliseconds(250);
constexpr size_t kMaxErrorBytes = 4096;

double UnitRandom() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

std::string DefaultWorkerId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::string rand = ids::New("w").substr(12);  // random part only
  return absl::StrCat(host[0] ? host : "localhost", ":", getpid(), ":", rand.substr(0, 6));
}

// Worth retrying the same write a moment later: the database went away, the
// pool was exhausted, or the transaction lost a serialization race.
bool Transient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsAborted(s);
}

}  // namespace

absl::StatusOr<WorkerOptions> WorkerOptions::FromEnv(std::string queue) {
  WorkerOptions o;
  o.queue = std::move(queue);
  C2D_ASSIGN_OR_RETURN(int64_t workers, env::GetInt("C2D_WORKERS", o.concurrency, 1, 256));
  o.concurrency = static_cast<int>(workers);
  C2D_ASSIGN_OR_RETURN(o.lease, env::GetDuration("C2D_JOB_LEASE", o.lease, milliseconds(300),
                                                 milliseconds(3'600'000)));
  C2D_ASSIGN_OR_RETURN(o.poll_interval, env::GetDuration("C2D_JOB_POLL_INTERVAL", o.poll_interval,
                                                         milliseconds(10), milliseconds(600'000)));
  C2D_ASSIGN_OR_RETURN(o.backoff_base, env::GetDuration("C2D_JOB_BACKOFF_BASE", o.backoff_base,
                                                        milliseconds(1), milliseconds(3'600'000)));
  C2D_ASSIGN_OR_RETURN(o.backoff_max, env::GetDuration("C2D_JOB_BACKOFF_MAX", o.backoff_max,
                                                       milliseconds(1), milliseconds(86'400'000)));
  C2D_ASSIGN_OR_RETURN(o.shutdown_grace,
                       env::GetDuration("C2D_SHUTDOWN_GRACE", o.shutdown_grace, milliseconds(0),
                                        milliseconds(3'600'000)));
  return o;
}

Worker::Worker(pg::Pool& pool, pg::ConnectOptions listen, WorkerOptions options)
    : pool_(pool), listen_(std::move(listen)), options_(std::move(options)) {
  if (options_.heartbeat_interval.count() <= 0) options_.heartbeat_interval = options_.lease / 3;
  if (options_.worker_id.empty()) options_.worker_id = DefaultWorkerId();
  options_.concurrency = std::max(options_.concurrency, 1);
  options_.max_batch = std::max(options_.max_batch, 1);
}

Worker::~Worker() { Shutdown(); }

void Worker::Register(std::string kind, Handler handler) {
  handlers_[std::move(kind)] = std::move(handler);
}

absl::Status Worker::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("worker already started");
    started_ = true;
    executors_running_ = options_.concurrency;
  }
  for (const auto& [kind, handler] : handlers_) kinds_.push_back(kind);
  for (int i = 0; i < options_.concurrency; ++i) executors_.emplace_back([this] { ExecuteLoop(); });
  if (!kinds_.empty()) {
    dispatcher_ = std::thread([this] { DispatchLoop(); });
    // A NOTIFY, or a reconnect after which one may have been missed, wakes
    // the dispatcher; between them it polls.
    listener_ = std::make_unique<pg::Listener>(listen_, Channel(options_.queue),
                                               [this](const std::string&) { Wake(); });
  }
  heartbeater_ = std::thread([this] { HeartbeatLoop(); });
  rescuer_ = std::thread([this] { RescueLoop(); });
  log::Info("job worker started", {{"queue", options_.queue},
                                   {"worker", options_.worker_id},
                                   {"concurrency", options_.concurrency},
                                   {"kinds", kinds_}});
  return absl::OkStatus();
}

void Worker::Wake() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

bool Worker::SleepFor(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&background_exit_), d);
  return !background_exit_;
}

template <typename F>
auto Worker::Record(absl::string_view what, absl::Time deadline, F&& fn)
    -> std::invoke_result_t<F, pg::Tx&> {
  while (true) {
    auto result = pool_.Transact(what, fn);
    if (result.ok() || !Transient(result.status()) || absl::Now() + kRecordRetryPause > deadline) {
      return result;
    }
    absl::SleepFor(kRecordRetryPause);
  }
}

void Worker::DispatchLoop() {
  absl::Duration error_pause = absl::Milliseconds(100);
  while (true) {
    int free = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      free = options_.concurrency - static_cast<int>(in_flight_.size());
    }
    absl::Duration wait = absl::FromChrono(options_.poll_interval);
    if (free > 0) {
      const int want = std::min(free, options_.max_batch);
      auto claimed = pool_.Transact("claim jobs", [&](pg::Tx& tx) {
        return Claim(tx, options_.queue, kinds_, options_.worker_id, want, options_.lease);
      });
      if (!claimed.ok()) {
        log::Warn("cannot claim jobs",
                  {{"queue", options_.queue}, {"error", claimed.status().ToString()}});
        wait = error_pause;
        error_pause = std::min(error_pause * 2, absl::Seconds(5));
      } else {
        error_pause = absl::Milliseconds(100);
        {
          absl::MutexLock lock(&mu_);
          for (Job& job : *claimed) {
            Metrics().claimed.Add({{"queue", job.queue}, {"kind", job.kind}}).Increment();
            auto context = std::make_shared<JobContext>(std::move(job));
            in_flight_[context->job().id] = InFlight{context};
            ready_.push_back(std::move(context));
          }
        }
        if (static_cast<int>(claimed->size()) == want) continue;  // more may be due
        // Sleep until the next scheduled job is due, if that comes before the poll.
        auto next = pool_.Transact(
            "next job time", [&](pg::Tx& tx) { return NextRunAt(tx, options_.queue, kinds_); });
        if (next.ok() && next->has_value()) {
          // Due but not claimed: locked by a concurrent claimer that may yet
          // roll back; look again shortly.
          wait = std::clamp(**next - absl::Now(), absl::Milliseconds(20), wait);
        }
      }
    }
    absl::MutexLock lock(&mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || wake_; };
    mu_.AwaitWithTimeout(absl::Condition(&woken), wait);
    wake_ = false;
  }
}

void Worker::HeartbeatLoop() {
  absl::Time last_ok = absl::Now();
  while (SleepFor(absl::FromChrono(options_.heartbeat_interval))) {
    std::vector<ClaimRef> refs;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, f] : in_flight_) refs.push_back({id, f.context->job().attempts});
    }
    if (refs.empty()) {
      last_ok = absl::Now();
      continue;
    }
    auto held = pool_.Transact("extend job leases", [&](pg::Tx& tx) {
      return Heartbeat(tx, options_.worker_id, refs, options_.lease);
    });
    if (!held.ok()) {
      log::Warn("cannot extend job leases",
                {{"queue", options_.queue}, {"error", held.status().ToString()}});
      if (absl::Now() - last_ok > absl::FromChrono(options_.lease)) {
        // Our leases have expired: another worker may run these jobs now.
        absl::MutexLock lock(&mu_);
        for (auto& [id, f] : in_flight_) f.context->Cancel();
      }
      continue;
    }
    last_ok = absl::Now();
    std::set<int64_t> still(held->begin(), held->end());
    absl::MutexLock lock(&mu_);
    for (const ClaimRef& ref : refs) {
      if (still.contains(ref.id)) continue;
      auto it = in_flight_.find(ref.id);
      if (it == in_flight_.end() || it->second.context->job().attempts != ref.attempt) continue;
      if (!it->second.context->cancelled()) {
        log::Info("job was cancelled or its lease lost; telling its handler",
                  {{"job_id", ref.id}, {"queue", options_.queue}});
      }
      it->second.context->Cancel();
    }
  }
}

void Worker::RescueLoop() {
  std::set<std::pair<std::string, std::string>> seen;  // (queue, state) gauges set before
  do {
    auto rescued =
        pool_.Transact("rescue expired jobs", [](pg::Tx& tx) { return RescueExpired(tx, 1000); });
    if (rescued.ok()) {
      for (const Rescued& r : *rescued) {
        Metrics().rescued.Add({{"queue", r.queue}}).Increment();
        log::Warn("rescued a job whose lease expired",
                  {{"job_id", r.id}, {"queue", r.queue}, {"state", StateName(r.state)}});
      }
    }
    auto depths = pool_.Transact("read queue depths", [](pg::Tx& tx) { return QueueDepths(tx); });
    if (depths.ok()) {
      std::set<std::pair<std::string, std::string>> now;
      for (const Depth& d : *depths) {
        std::string state(StateName(d.state));
        Metrics()
            .depth.Add({{"queue", d.queue}, {"state", state}})
            .Set(static_cast<double>(d.count));
        now.insert({d.queue, state});
      }
      for (const auto& [queue, state] : seen) {
        if (!now.contains({queue, state}))
          Metrics().depth.Add({{"queue", queue}, {"state", state}}).Set(0);
      }
      seen.insert(now.begin(), now.end());
    }
  } while (SleepFor(absl::FromChrono(options_.rescue_interval)));
}

void Worker::ExecuteLoop() {
  while (true) {
    std::shared_ptr<JobContext> context;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return executors_exit_ || !ready_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (ready_.empty()) {
        --executors_running_;
        return;
      }
      context = std::move(ready_.front());
      ready_.pop_front();
    }
    RunOne(context);
    absl::MutexLock lock(&mu_);
    in_flight_.erase(context->job().id);
    wake_ = true;  // a slot is free
  }
}

void Worker::RunOne(const std::shared_ptr<JobContext>& context) {
  const Job& job = context->job();
  log::Scope scope(
      {{"job_id", job.id}, {"queue", job.queue}, {"kind", job.kind}, {"attempt", job.attempts}});
  const ClaimRef ref{job.id, job.attempts};
  const std::string& me = options_.worker_id;
  const absl::Time start = absl::Now();
  absl::Status result;
  try {
    result = handlers_.at(job.kind)(*context);
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("handler threw: ", e.what()));
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  // Heartbeats go on while we record, so the claim stays ours for a lease
  // past the last one; after that the rescuer owns the job.
  const absl::Time deadline = absl::Now() + absl::FromChrono(options_.lease);
  const prometheus::Labels labels{{"queue", job.queue}, {"kind", job.kind}};
  auto observe = [&](const char* outcome) {
    prometheus::Labels l = labels;
    l["result"] = outcome;
    Metrics().duration.Add(l, metrics::DurationBuckets()).Observe(seconds);
  };

  if (result.ok()) {
    auto recorded = Record("record job success", deadline,
                           [&](pg::Tx& tx) { return MarkSucceeded(tx, me, ref); });
    if (recorded.ok() && *recorded) {
      Metrics().succeeded.Add(labels).Increment();
      observe("succeeded");
      log::Info("job succeeded", {{"seconds", seconds}});
      return;
    }
    if (!recorded.ok()) {
      log::Error("cannot record job success; the job will run again after its lease expires",
                 {{"error", recorded.status().ToString()}});
      return;
    }
  } else if (context->cancelled()) {
    // Cancelled in the database, lease lost, or shutting down: give the claim
    // back if it is still ours (only in the last case), without counting it.
    auto released = Record("release job", deadline, [&](pg::Tx& tx) {
      return Release(tx, me, ref, absl::StrCat("interrupted: ", result.message()));
    });
    if (released.ok() && *released) {
      observe("released");
      log::Info("job released unfinished", {{"error", result.ToString()}});
      return;
    }
  } else {
    std::string error = result.ToString();
    if (error.size() > kMaxErrorBytes) error.resize(kMaxErrorBytes);
    const bool permanent = IsPermanent(result);
    const milliseconds delay =
        Backoff(job.attempts, options_.backoff_base, options_.backoff_max, UnitRandom());
    State final_state = State::kFailed;
    auto recorded = Record("record job failure", deadline, [&](pg::Tx& tx) {
      return MarkFailed(tx, me, ref, error, permanent, delay, &final_state);
    });
    if (recorded.ok() && *recorded) {
      if (final_state == State::kFailed) {
        Metrics().failed.Add(labels).Increment();
        observe("failed");
        log::Error("job failed", {{"error", error}, {"permanent", permanent}});
      } else {
        Metrics().retried.Add(labels).Increment();
        observe("retried");
        log::Warn("job attempt failed; will retry",
                  {{"error", error}, {"retry_in_ms", delay.count()}});
      }
      return;
    }
    if (!recorded.ok()) {
      log::Error("cannot record job failure; the job will run again after its lease expires",
                 {{"error", recorded.status().ToString()}});
      return;
    }
  }
  Metrics().lost.Add(labels).Increment();
  observe("lost");
  log::Info("job was cancelled or taken over while it ran; outcome dropped");
}

void Worker::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    if (!started_) return;
    stopping_ = true;
  }
  if (dispatcher_.joinable()) dispatcher_.join();
  listener_.reset();

  // Claimed but not started: give them back now.
  std::deque<std::shared_ptr<JobContext>> unstarted;
  {
    absl::MutexLock lock(&mu_);
    unstarted.swap(ready_);
    executors_exit_ = true;
  }
  const absl::Time release_deadline = absl::Now() + absl::Seconds(5);
  for (const auto& context : unstarted) {
    const ClaimRef ref{context->job().id, context->job().attempts};
    (void)Record("release job", release_deadline, [&](pg::Tx& tx) {
      return Release(tx, options_.worker_id, ref, "released at worker shutdown");
    });
    absl::MutexLock lock(&mu_);
    in_flight_.erase(ref.id);
  }

  auto executors_done = [this]()
                            ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return executors_running_ == 0; };
  {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&executors_done),
                              absl::FromChrono(options_.shutdown_grace))) {
      log::Warn("shutdown grace period over; cancelling running jobs",
                {{"queue", options_.queue}, {"running", in_flight_.size()}});
      for (auto& [id, f] : in_flight_) f.context->Cancel();
      // Handlers that honour cancellation release their claims as they return.
      if (!mu_.AwaitWithTimeout(absl::Condition(&executors_done), absl::Seconds(5))) {
        log::Error("job handlers ignore cancellation; waiting for them to return",
                   {{"queue", options_.queue}, {"running", in_flight_.size()}});
      }
    }
  }
  for (auto& t : executors_) t.join();
  {
    absl::MutexLock lock(&mu_);
    background_exit_ = true;
  }
  if (heartbeater_.joinable()) heartbeater_.join();
  if (rescuer_.joinable()) rescuer_.join();
  log::Info("job worker stopped", {{"queue", options_.queue}});
}

}  // namespace c2d::jobs
