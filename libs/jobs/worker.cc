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
// The prefetch follows the jobs finished in this window.
constexpr absl::Duration kPrefetchWindow = absl::Milliseconds(100);
// Outcomes recorded per statement at most, and how long the completer waits
// for a group to fill.
constexpr size_t kGroup = 512;
constexpr absl::Duration kGroupWait = absl::Milliseconds(1);

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

ClaimRef ClaimOf(const Job& job) { return {job.id, job.attempts, job.locked_by}; }

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
  options_.max_prefetch = std::max(options_.max_prefetch, 0);
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
  for (const auto& [kind, handler] : handlers_) {
    kinds_.push_back(kind);
    metrics_.emplace(kind, ResolveMetrics(kind));
  }
  for (int i = 0; i < options_.concurrency; ++i) executors_.emplace_back([this] { ExecuteLoop(); });
  completer_ = std::thread([this] { CompleteLoop(); });
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
auto Worker::Record(absl::string_view what, absl::Time deadline, int statements, F&& fn)
    -> std::invoke_result_t<F, pg::Tx&> {
  while (true) {
    // One statement is a transaction of its own: no BEGIN and COMMIT.
    auto result = statements == 1 ? pool_.Read(what, fn) : pool_.Transact(what, fn);
    if (result.ok() || !Transient(result.status()) || absl::Now() + kRecordRetryPause > deadline) {
      return result;
    }
    absl::SleepFor(kRecordRetryPause);
  }
}

int Worker::WantLocked() {
  const absl::Time now = absl::Now();
  if (now - window_start_ >= kPrefetchWindow) {  // also after a quiet spell
    prefetch_ =
        std::min<int>(options_.max_prefetch,
                      static_cast<int>(finished_in_window_ *
                                       absl::FDivDuration(kPrefetchWindow, now - window_start_)));
    finished_in_window_ = 0;
    window_start_ = now;
  }
  const int held = static_cast<int>(ready_.size()) + running_;
  const int want = options_.concurrency + prefetch_ - held;
  if (want <= 0) return 0;
  const bool idle_executor = held < options_.concurrency;
  if (!idle_executor && want < (options_.concurrency + prefetch_) / 2) return 0;
  return std::min(want, options_.max_batch);
}

void Worker::NoteFinishedLocked() { ++finished_in_window_; }

void Worker::DispatchLoop() {
  absl::Duration error_pause = absl::Milliseconds(100);
  while (true) {
    int want = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      want = WantLocked();
    }
    absl::Duration wait = absl::FromChrono(options_.poll_interval);
    if (want > 0) {
      // Each claim is held under a name of its own (see Claim).
      const std::string holder = absl::StrCat(options_.worker_id, "/", ++claims_made_);
      auto claimed = pool_.Read("claim jobs", [&](pg::Tx& tx) {
        return Claim(tx, options_.queue, kinds_, holder, want, options_.lease);
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
            metrics_.at(job.kind).claimed->Increment();
            auto context = std::make_shared<JobContext>(std::move(job));
            auto& slot = in_flight_[context->job().id];
            // Claimed again after PostgreSQL lost our earlier claim in a crash.
            if (slot.context != nullptr) slot.context->Cancel();
            slot = InFlight{context};
            ready_.push_back(std::move(context));
          }
        }
        if (static_cast<int>(claimed->size()) == want) continue;  // more may be due
        // Sleep until the next scheduled job is due, if that comes before the poll.
        auto next = pool_.Transact(
            "next job time", [&](pg::Tx& tx) { return NextRunAt(tx, options_.queue, kinds_); });
        if (next.ok() && next->has_value()) {
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
      for (const auto& [id, f] : in_flight_) refs.push_back(ClaimOf(f.context->job()));
    }
    if (refs.empty()) {
      last_ok = absl::Now();
      continue;
    }
    auto held = pool_.Read("extend job leases",
                           [&](pg::Tx& tx) { return Heartbeat(tx, refs, options_.lease); });
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
      if (it == in_flight_.end() || it->second.context->job().locked_by != ref.holder) continue;
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
        Metrics().oldest_age.Add({{"queue", d.queue}, {"state", state}}).Set(d.oldest_age_seconds);
        now.insert({d.queue, state});
      }
      for (const auto& [queue, state] : seen) {
        if (now.contains({queue, state})) continue;
        Metrics().depth.Add({{"queue", queue}, {"state", state}}).Set(0);
        Metrics().oldest_age.Add({{"queue", queue}, {"state", state}}).Set(0);
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
      ++running_;
      if (WantLocked() > 0) wake_ = true;
    }
    Finished f = RunOne(context);
    absl::MutexLock lock(&mu_);
    --running_;
    NoteFinishedLocked();
    finished_.push_back(std::move(f));
    if (WantLocked() > 0) wake_ = true;
  }
}

Worker::Finished Worker::RunOne(const std::shared_ptr<JobContext>& context) {
  const Job& job = context->job();
  log::Scope scope(
      {{"job_id", job.id}, {"queue", job.queue}, {"kind", job.kind}, {"attempt", job.attempts}});
  const absl::Time start = absl::Now();
  absl::Status result;
  try {
    result = handlers_.at(job.kind)(*context);
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("handler threw: ", e.what()));
  }
  const absl::Time end = absl::Now();
  Finished f{context,
             {.claim = ClaimOf(job)},
             result,
             absl::ToDoubleSeconds(end - start),
             // Heartbeats go on until it is recorded, so the claim stays ours
             // for a lease past the last one; after that the rescuer owns the job.
             end + absl::FromChrono(options_.lease)};
  if (result.ok()) {
    f.outcome.kind = Outcome::Kind::kSucceeded;
  } else if (context->cancelled()) {
    // Cancelled in the database, lease lost, or shutting down: give the claim
    // back if it is still ours (only in the last case), without counting it.
    f.outcome.kind = Outcome::Kind::kReleased;
    f.outcome.error = absl::StrCat("interrupted: ", result.message());
  } else {
    f.outcome.kind = Outcome::Kind::kFailed;
    f.outcome.error = result.ToString();
    if (f.outcome.error.size() > kMaxErrorBytes) f.outcome.error.resize(kMaxErrorBytes);
    f.outcome.permanent = IsPermanent(result);
    f.outcome.retry_delay =
        Backoff(job.attempts, options_.backoff_base, options_.backoff_max, UnitRandom());
  }
  return f;
}

void Worker::CompleteLoop() {
  while (true) {
    std::vector<Finished> group;
    {
      absl::MutexLock lock(&mu_);
      auto any = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return completer_exit_ || !finished_.empty();
      };
      mu_.Await(absl::Condition(&any));
      if (finished_.empty()) return;  // told to exit, and all is recorded
      // A moment for the rest of a group to finish (handlers of one claim
      // often end together); at once when a full group waits.
      auto full = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return completer_exit_ || finished_.size() >= kGroup;
      };
      mu_.AwaitWithTimeout(absl::Condition(&full), kGroupWait);
      const size_t n = std::min(finished_.size(), kGroup);
      group.assign(std::make_move_iterator(finished_.begin()),
                   std::make_move_iterator(finished_.begin() + n));
      finished_.erase(finished_.begin(), finished_.begin() + n);
    }
    Flush(std::move(group));
  }
}

void Worker::Flush(std::vector<Finished> group) {
  std::vector<Outcome> outcomes;
  absl::Time deadline = absl::InfiniteFuture();
  for (const Finished& f : group) {
    outcomes.push_back(f.outcome);
    deadline = std::min(deadline, f.deadline);
  }
  auto recorded = Record("record job outcomes", deadline, OutcomeStatements(outcomes),
                         [&](pg::Tx& tx) { return RecordOutcomes(tx, outcomes); });
  for (size_t i = 0; i < group.size(); ++i) {
    Report(group[i], recorded.ok() ? absl::StatusOr<Recorded>((*recorded)[i])
                                   : absl::StatusOr<Recorded>(recorded.status()));
  }
  absl::MutexLock lock(&mu_);
  for (const Finished& f : group) {
    auto it = in_flight_.find(f.outcome.claim.id);
    if (it != in_flight_.end() && it->second.context == f.context) in_flight_.erase(it);
  }
}

Worker::KindMetrics Worker::ResolveMetrics(const std::string& kind) const {
  const prometheus::Labels labels{{"queue", options_.queue}, {"kind", kind}};
  auto duration = [&](const char* result) {
    prometheus::Labels l = labels;
    l["result"] = result;
    return &Metrics().duration.Add(l, metrics::DurationBuckets());
  };
  return {&Metrics().claimed.Add(labels),
          &Metrics().succeeded.Add(labels),
          &Metrics().retried.Add(labels),
          &Metrics().failed.Add(labels),
          &Metrics().lost.Add(labels),
          duration("succeeded"),
          duration("retried"),
          duration("failed"),
          duration("released"),
          duration("lost")};
}

void Worker::Report(const Finished& f, const absl::StatusOr<Recorded>& recorded) {
  const Job& job = f.context->job();
  const KindMetrics& m = metrics_.at(job.kind);
  // Log fields only for what is logged (a success is not, unless debugging).
  auto with = [&](nlohmann::json more) {
    more.update(
        {{"job_id", job.id}, {"queue", job.queue}, {"kind", job.kind}, {"attempt", job.attempts}});
    return more;
  };
  if (!recorded.ok()) {
    log::Error("cannot record a job's outcome; the job will run again after its lease expires",
               with({{"error", recorded.status().ToString()}}));
    return;
  }
  if (!recorded->held) {
    m.lost->Increment();
    m.lost_seconds->Observe(f.seconds);
    log::Info("job was cancelled or taken over while it ran; outcome dropped",
              with(nlohmann::json::object()));
    return;
  }
  switch (f.outcome.kind) {
    case Outcome::Kind::kSucceeded:
      m.succeeded->Increment();
      m.succeeded_seconds->Observe(f.seconds);
      if (log::Enabled(log::Level::kDebug)) {
        log::Debug("job succeeded", with({{"seconds", f.seconds}}));
      }
      return;
    case Outcome::Kind::kReleased:
      m.released_seconds->Observe(f.seconds);
      log::Info("job released unfinished", with({{"error", f.result.ToString()}}));
      return;
    case Outcome::Kind::kFailed:
      if (recorded->state == State::kFailed) {
        m.failed->Increment();
        m.failed_seconds->Observe(f.seconds);
        log::Error("job failed",
                   with({{"error", f.outcome.error}, {"permanent", f.outcome.permanent}}));
      } else {
        m.retried->Increment();
        m.retried_seconds->Observe(f.seconds);
        log::Warn(
            "job attempt failed; will retry",
            with({{"error", f.outcome.error}, {"retry_in_ms", f.outcome.retry_delay.count()}}));
      }
      return;
  }
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
  if (!unstarted.empty()) {
    std::vector<Outcome> releases;
    for (const auto& context : unstarted) {
      releases.push_back({.claim = ClaimOf(context->job()),
                          .kind = Outcome::Kind::kReleased,
                          .error = "released at worker shutdown"});
    }
    (void)Record("release jobs", absl::Now() + absl::Seconds(5), OutcomeStatements(releases),
                 [&](pg::Tx& tx) { return RecordOutcomes(tx, releases); });
    absl::MutexLock lock(&mu_);
    for (const auto& context : unstarted) in_flight_.erase(context->job().id);
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
    completer_exit_ = true;  // once every outcome is recorded
  }
  if (completer_.joinable()) completer_.join();
  {
    absl::MutexLock lock(&mu_);
    background_exit_ = true;
  }
  if (heartbeater_.joinable()) heartbeater_.join();
  if (rescuer_.joinable()) rescuer_.join();
  log::Info("job worker stopped", {{"queue", options_.queue}});
}

}  // namespace c2d::jobs
