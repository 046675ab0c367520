#include "libs/pg/listener.h"

#include "libs/common/log.h"

namespace c2d::pg {
namespace {

class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel,
           std::function<void(const std::string&)> on)
      : pqxx::notification_receiver(conn, channel), on_(std::move(on)) {}
  void operator()(const std::string& payload, int) override { on_(payload); }

 private:
  std::function<void(const std::string&)> on_;
};

// Versions of keys nobody asked about for a while are dropped beyond this many.
constexpr size_t kMaxKeys = 10'000;

}  // namespace

Listener::Listener(ConnectOptions connect, std::string channel,
                   std::function<void(const std::string&)> on_change)
    : connect_(std::move(connect)), channel_(std::move(channel)), on_change_(std::move(on_change)) {
  thread_ = std::thread([this] { Loop(); });
}

Listener::~Listener() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

uint64_t Listener::VersionLocked(const std::string& key) {
  auto it = versions_.find(key);
  return epoch_ + (it == versions_.end() ? 0 : it->second);
}

uint64_t Listener::Version(const std::string& key) {
  absl::MutexLock lock(&mu_);
  return VersionLocked(key);
}

void Listener::WaitForChange(const std::string& key, uint64_t seen, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || VersionLocked(key) != seen;
  };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
}

void Listener::Loop() {
  absl::Duration pause = absl::Milliseconds(100);
  auto stopping = [this] {
    absl::MutexLock lock(&mu_);
    return stop_;
  };
  while (!stopping()) {
    auto conn = Connect(connect_);
    if (conn.ok()) {
      try {
        Receiver receiver((*conn)->raw(), channel_, [this](const std::string& payload) {
          {
            absl::MutexLock lock(&mu_);
            if (versions_.size() > kMaxKeys) {
              versions_.clear();
              ++epoch_;  // so that no waiter mistakes a dropped count for "unchanged"
            }
            ++versions_[payload];
          }
          if (on_change_) on_change_(payload);
        });
        {
          absl::MutexLock lock(&mu_);
          ++epoch_;  // whatever happened while we were not listening
        }
        if (on_change_) on_change_("");
        pause = absl::Milliseconds(100);
        while (!stopping()) (*conn)->raw().await_notification(0, 200'000);
        return;
      } catch (const std::exception& e) {
        log::Warn("listener lost its database connection",
                  {{"channel", channel_}, {"error", e.what()}});
      }
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), pause);
    pause = std::min(pause * 2, absl::Seconds(5));
  }
}

}  // namespace c2d::pg
