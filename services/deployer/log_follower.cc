#include "services/deployer/log_follower.h"

#include <set>

#include "libs/common/log.h"

namespace c2d::deployer {
namespace {

constexpr absl::Duration kFlushEvery = absl::Milliseconds(250);
// A burst beyond this between flushes is cut (the tail is bounded anyway).
constexpr size_t kMaxPending = 5000;

}  // namespace

LogFollowers::LogFollowers(Runtime& runtime, absl::Duration stale_after)
    : runtime_(runtime), stale_after_(stale_after) {
  flusher_ = std::thread([this] { FlushLoop(); });
}

LogFollowers::~LogFollowers() {
  StopAll();
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  flusher_.join();
}

void LogFollowers::Sync(const std::vector<InstanceRow>& rows) {
  std::map<std::string, const InstanceRow*> wanted;
  for (const InstanceRow& r : rows) {
    if (!r.instance.provider_ref().empty() && r.instance.state() != v1::INSTANCE_STATE_STOPPED) {
      wanted[r.instance.id()] = &r;
    }
  }
  std::vector<std::unique_ptr<Follower>> finished;
  {
    absl::MutexLock lock(&mu_);
    last_sync_ = absl::Now();
    for (auto it = followers_.begin(); it != followers_.end();) {
      auto w = wanted.find(it->first);
      if (w == wanted.end() || it->second->done ||
          w->second->instance.provider_ref() != it->second->ref) {
        it->second->cancel = true;
        finished.push_back(std::move(it->second));
        it = followers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& f : finished) {
    f->thread.join();
    Flush(f.get());
  }
  std::vector<std::string> fresh;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, row] : wanted) {
      if (!followers_.count(id)) fresh.push_back(id);
    }
  }
  if (fresh.empty()) return;
  // Where each new follower resumes, in one read for all of them (a new
  // leader starts thousands at once).
  auto last = runtime_.pool().Read("last runtime log lines",
                                   [&](pg::Tx& tx) { return LastRuntimeLogTimes(tx, fresh); });
  if (!last.ok()) {
    log::Warn("cannot read where runtime logs resume; following them at the next pass",
              {{"error", last.status().ToString()}});
    return;
  }
  absl::MutexLock lock(&mu_);
  for (const std::string& id : fresh) {
    const InstanceRow* row = wanted[id];
    auto f = std::make_unique<Follower>();
    f->service_id = row->instance.service_id();
    f->instance_id = id;
    f->ref = row->instance.provider_ref();
    if (auto at = last->find(id); at != last->end()) f->since = at->second;
    Follower* raw = f.get();
    f->thread = std::thread([this, raw] { Follow(raw); });
    followers_[id] = std::move(f);
  }
}

void LogFollowers::StopAll() {
  std::map<std::string, std::unique_ptr<Follower>> all;
  {
    absl::MutexLock lock(&mu_);
    all.swap(followers_);
  }
  for (auto& [id, f] : all) f->cancel = true;
  for (auto& [id, f] : all) {
    f->thread.join();
    Flush(f.get());
  }
}

void LogFollowers::Follow(Follower* f) {
  const std::optional<absl::Time> since = f->since;
  absl::Status s = runtime_.provider().FollowLogs(
      f->ref, since,
      [&](const cloud::LogLine& l) {
        // The engine's `since` has one-second steps: skip what is stored.
        if (since && l.time && *l.time <= *since) return true;
        absl::MutexLock lock(&f->mu);
        if (f->pending.size() < kMaxPending) {
          f->pending.push_back({l.stderr ? "stderr" : "stdout", l.text, l.time});
        }
        return true;
      },
      &f->cancel);
  if (!s.ok() && !absl::IsNotFound(s)) {
    log::Warn("cannot follow an instance's output",
              {{"instance_id", f->instance_id}, {"error", s.ToString()}});
  }
  f->done = true;
}

void LogFollowers::Flush(Follower* f) {
  std::vector<RuntimeLine> lines;
  {
    absl::MutexLock lock(&f->mu);
    lines.swap(f->pending);
  }
  if (lines.empty()) return;
  absl::Status s = runtime_.pool().Transact("runtime logs", [&](pg::Tx& tx) {
    return AppendRuntimeLogs(tx, f->service_id, f->instance_id, lines);
  });
  if (!s.ok()) {
    log::Warn("cannot store runtime log lines",
              {{"instance_id", f->instance_id}, {"lines", lines.size()}, {"error", s.ToString()}});
  }
}

void LogFollowers::FlushLoop() {
  while (true) {
    bool stale = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), kFlushEvery);
      if (stop_) return;
      // Flushed under mu_: Sync cannot destroy a follower meanwhile.
      for (auto& [id, f] : followers_) Flush(f.get());
      stale = !followers_.empty() && absl::Now() - last_sync_ > stale_after_;
    }
    if (stale) {
      log::Info("runtime log followers stop: this process no longer reconciles", {});
      StopAll();
    }
  }
}

}  // namespace c2d::deployer
