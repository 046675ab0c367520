#include "libs/jobs/leader.h"

#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/crypto/hash.h"

namespace c2d::jobs {
namespace {
// How often a follower tries to take over.
constexpr absl::Duration kFollowerRetry = absl::Seconds(2);
}  // namespace

Leader::Leader(pg::ConnectOptions connect, std::string name, std::chrono::milliseconds interval,
               std::function<void()> duty, std::function<void()> on_lost)
    : connect_(std::move(connect)),
      name_(std::move(name)),
      interval_(interval),
      duty_(std::move(duty)),
      on_lost_(std::move(on_lost)) {}

Leader::~Leader() { Stop(); }

int64_t Leader::LockKey(const std::string& name) {
  std::string hex = crypto::Sha256Hex("c2d.leader." + name);
  return static_cast<int64_t>(std::stoull(hex.substr(0, 16), nullptr, 16));
}

void Leader::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Leader::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool Leader::is_leader() const {
  absl::MutexLock lock(&mu_);
  return leader_;
}

void Leader::Loop() {
  const int64_t key = LockKey(name_);
  std::unique_ptr<pg::Connection> conn;
  auto set_leader = [&](bool value) {
    absl::MutexLock lock(&mu_);
    if (leader_ != value) {
      log::Info(value ? "became leader" : "no longer leader", {{"duty", name_}});
    }
    leader_ = value;
  };
  bool was_leader = false;
  while (true) {
    bool leader = false;
    try {
      if (conn == nullptr) {
        auto c = pg::Connect(connect_);
        if (c.ok()) conn = std::move(*c);
      }
      if (conn != nullptr) {
        pqxx::nontransaction nt(conn->raw());
        // Asking again while holding the lock also proves the session is
        // alive; the lock stacks, so undo the extra level.
        leader = nt.exec_params1("SELECT pg_try_advisory_lock($1)", key)[0].as<bool>();
        if (leader && was_leader) nt.exec_params("SELECT pg_advisory_unlock($1)", key);
      }
    } catch (const std::exception& e) {
      log::Warn("leader election lost its database session",
                {{"duty", name_}, {"error", e.what()}});
      conn.reset();  // the server drops our lock with the session
      leader = false;
    }
    set_leader(leader);
    if (was_leader && !leader && on_lost_) {
      try {
        on_lost_();
      } catch (const std::exception& e) {
        log::Error("leadership loss handler threw", {{"duty", name_}, {"error", e.what()}});
      }
    }
    was_leader = leader;
    if (leader) {
      try {
        duty_();
      } catch (const std::exception& e) {
        log::Error("periodic duty threw", {{"duty", name_}, {"error", e.what()}});
      }
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stop_),
                             leader ? absl::FromChrono(interval_) : kFollowerRetry)) {
      break;
    }
  }
  if (conn != nullptr) {
    try {
      pqxx::nontransaction nt(conn->raw());
      nt.exec("SELECT pg_advisory_unlock_all()");
    } catch (const std::exception&) {
      // Closing the session below releases it anyway.
    }
  }
  set_leader(false);
}

}  // namespace c2d::jobs
