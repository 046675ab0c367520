#include "libs/pg/pool.h"

#include <map>
#include <stdexcept>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/env.h"
#include "libs/common/status.h"
#include "libs/metrics/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace c2d::pg {
namespace {

struct PoolMetrics {
  prometheus::Gauge& open;
  prometheus::Gauge& in_use;
  prometheus::Counter& checkout_timeouts;
  prometheus::Counter& discarded;
};

PoolMetrics& Metrics() {
  static PoolMetrics* m = [] {
    auto& reg = metrics::Registry();
    auto& conns = prometheus::BuildGauge()
                      .Name("c2d_db_pool_connections")
                      .Help("Database connections of this process's pool, by state")
                      .Register(reg);
    auto& timeouts = prometheus::BuildCounter()
                         .Name("c2d_db_pool_checkout_timeouts_total")
                         .Help("Checkouts that found no free connection within the deadline")
                         .Register(reg);
    auto& discarded = prometheus::BuildCounter()
                          .Name("c2d_db_pool_connections_discarded_total")
                          .Help("Connections dropped after a connection error")
                          .Register(reg);
    return new PoolMetrics{conns.Add({{"state", "open"}}), conns.Add({{"state", "in_use"}}),
                           timeouts.Add({}), discarded.Add({})};
  }();
  return *m;
}

// Adds libpq keywords to a URI ("postgresql://…?a=b") or keyword string.
std::string WithParam(std::string url, absl::string_view key, absl::string_view value) {
  if (absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://")) {
    if (absl::StrContains(url, absl::StrCat(key, "="))) return url;
    absl::StrAppend(&url, absl::StrContains(url, "?") ? "&" : "?", key, "=", value);
  } else {
    if (absl::StrContains(url, absl::StrCat(key, "="))) return url;
    absl::StrAppend(&url, url.empty() ? "" : " ", key, "=", value);
  }
  return url;
}

}  // namespace

void Connection::EnsurePrepared(const Statement& statement) {
  auto it = prepared_.find(statement.name);
  if (it != prepared_.end() && it->second == statement.sql) return;
  // Names are process-wide: a second statement under a used name would
  // otherwise run whichever SQL the connection happened to prepare first.
  static absl::Mutex mu(absl::kConstInit);
  static auto* sql_by_name = new std::map<std::string, std::string>();
  {
    absl::MutexLock lock(&mu);
    auto [known, added] = sql_by_name->emplace(statement.name, statement.sql);
    if (!added && known->second != statement.sql) {
      throw std::logic_error(absl::StrCat("two SQL statements are named ", statement.name));
    }
  }
  if (it == prepared_.end()) conn_->prepare(statement.name, statement.sql);
  prepared_[statement.name] = statement.sql;
}

absl::StatusOr<std::unique_ptr<Connection>> Connect(const ConnectOptions& options) {
  std::string url = options.url;
  int64_t connect_s = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options.connect_timeout).count());
  url = WithParam(url, "connect_timeout", std::to_string(connect_s));
  url = WithParam(url, "application_name", options.application_name);
  // Detect a vanished server within ~30 s even when no statement is running.
  url = WithParam(url, "keepalives_idle", "10");
  url = WithParam(url, "keepalives_interval", "5");
  url = WithParam(url, "keepalives_count", "3");
  try {
    auto conn = std::make_unique<pqxx::connection>(url);
    pqxx::nontransaction setup(*conn);
    setup.exec0(absl::StrCat("SET statement_timeout = ", options.statement_timeout.count()));
    setup.commit();
    return std::make_unique<Connection>(std::move(conn));
  } catch (const std::exception& e) {
    absl::Status s = ToStatus(e, "connect to PostgreSQL");
    // A refused or timed-out connect is always worth retrying later.
    return absl::UnavailableError(s.message());
  }
}

absl::StatusOr<PoolOptions> PoolOptions::FromEnv(absl::string_view application_name) {
  using std::chrono::milliseconds;
  PoolOptions o;
  C2D_ASSIGN_OR_RETURN(o.connect.url, env::GetRequired("C2D_DATABASE_URL"));
  o.connect.application_name = std::string(application_name);
  C2D_ASSIGN_OR_RETURN(int64_t size, env::GetInt("C2D_DB_POOL_SIZE", 8, 1, 1000));
  o.size = static_cast<int>(size);
  C2D_ASSIGN_OR_RETURN(o.checkout_timeout,
                       env::GetDuration("C2D_DB_CHECKOUT_TIMEOUT", milliseconds(5000),
                                        milliseconds(1), milliseconds(600'000)));
  C2D_ASSIGN_OR_RETURN(o.connect.connect_timeout,
                       env::GetDuration("C2D_DB_CONNECT_TIMEOUT", milliseconds(5000),
                                        milliseconds(1000), milliseconds(600'000)));
  C2D_ASSIGN_OR_RETURN(o.connect.statement_timeout,
                       env::GetDuration("C2D_DB_STATEMENT_TIMEOUT", milliseconds(30'000),
                                        milliseconds(0), milliseconds(3'600'000)));
  return o;
}

Pool::Pool(PoolOptions options) : options_(std::move(options)) {}

Pool::~Pool() {
  absl::MutexLock lock(&mu_);
  // Every Lease must be gone before the pool; idle connections close here.
  Metrics().open.Decrement(static_cast<double>(idle_.size()));
  idle_.clear();
}

absl::StatusOr<Pool::Lease> Pool::Acquire() {
  const absl::Time deadline = absl::Now() + absl::FromChrono(options_.checkout_timeout);
  mu_.Lock();
  auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !idle_.empty() || open_ < options_.size;
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&available), deadline)) {
    mu_.Unlock();
    Metrics().checkout_timeouts.Increment();
    return absl::DeadlineExceededError(
        absl::StrCat("no free database connection within ", options_.checkout_timeout.count(),
                     "ms (pool size ", options_.size, ", C2D_DB_POOL_SIZE)"));
  }
  if (!idle_.empty()) {
    std::unique_ptr<Connection> conn = std::move(idle_.back());
    idle_.pop_back();
    mu_.Unlock();
    Metrics().in_use.Increment();
    if (conn->raw().is_open()) return Lease(this, std::move(conn));
    // Closed while idle: replace it below, keeping its slot.
    Metrics().discarded.Increment();
    Metrics().in_use.Decrement();
    Metrics().open.Decrement();
  } else {
    ++open_;
    mu_.Unlock();
  }
  // We hold a slot in open_; connect outside the lock.
  auto conn = Connect(options_.connect);
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return conn.status();
  }
  Metrics().open.Increment();
  Metrics().in_use.Increment();
  return Lease(this, std::move(*conn));
}

void Pool::Release(std::unique_ptr<Connection> conn, bool broken) {
  Metrics().in_use.Decrement();
  if (broken || !conn->raw().is_open()) {
    Metrics().discarded.Increment();
    Metrics().open.Decrement();
    conn.reset();  // close outside the lock
    absl::MutexLock lock(&mu_);
    --open_;
    return;
  }
  absl::MutexLock lock(&mu_);
  idle_.push_back(std::move(conn));
}

Pool::Lease::~Lease() {
  if (pool_ != nullptr && conn_ != nullptr) pool_->Release(std::move(conn_), broken_);
}

}  // namespace c2d::pg
