#include "services/dbprov/reconciler.h"

#include <set>

#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/metrics/metrics.h"
#include "prometheus/counter.h"
#include "services/dbprov/store.h"

namespace c2d::dbprov {
namespace {

// A server that ran at least this long before it exited was not crash-looping.
constexpr absl::Duration kStableRun = absl::Minutes(1);
constexpr absl::Duration kMaxBackoff = absl::Minutes(5);

prometheus::Family<prometheus::Counter>& Restarts() {
  static auto& family = prometheus::BuildCounter()
                            .Name("c2d_database_restarts_total")
                            .Help(
                                "Database servers started again by dbprov's leader, by why "
                                "(exited, lost)")
                            .Register(metrics::Registry());
  return family;
}

}  // namespace

void Reconciler::RunOnce() {
  auto rows = pool_.Read("served databases", [](pg::Tx& tx) { return ServedDatabases(tx); });
  if (!rows.ok()) {
    log::Warn("reconcile databases: cannot list them", {{"error", rows.status().ToString()}});
    return;
  }
  const absl::Time now = absl::Now();
  std::set<std::string> seen;
  for (const DatabaseRow& row : *rows) {
    seen.insert(row.db.id());
    Check(row, now);
  }
  // Forget the backoff of databases no longer served.
  for (auto it = backoff_.begin(); it != backoff_.end();) {
    it = seen.count(it->first) ? std::next(it) : backoff_.erase(it);
  }
}

void Reconciler::Check(const DatabaseRow& row, absl::Time now) {
  const std::string& id = row.db.id();
  auto servers = provider_.List({{kDatabaseLabel, id}});
  if (!servers.ok()) {
    log::Warn("reconcile databases: cannot list servers",
              {{"database_id", id}, {"error", servers.status().ToString()}});
    return;
  }
  const bool lost = servers->empty();
  if (!lost && (servers->front().state == cloud::InstanceState::kRunning ||
                servers->front().state == cloud::InstanceState::kStopping)) {
    return;  // serving, or going away: the next pass sees what is left
  }
  Backoff& b = backoff_[id];
  if (b.restart_at == absl::InfinitePast()) {
    // Just seen down: plan its restart.
    const cloud::Instance* s = lost ? nullptr : &servers->front();
    const bool short_run = s != nullptr && s->started_at && s->finished_at &&
                           *s->finished_at - *s->started_at < kStableRun;
    b.exits = short_run ? b.exits + 1 : 0;
    absl::Duration delay = absl::FromChrono(config_.restart_backoff);
    for (int i = 0; i < b.exits && delay < kMaxBackoff; ++i) delay *= 2;
    b.restart_at = now + std::min(delay, kMaxBackoff);
    log::Warn(lost ? "database server lost" : "database server exited",
              {{"database_id", id},
               {"exit_code", s ? s->exit_code : -1},
               {"oom_killed", s ? s->oom_killed : false},
               {"restart_in_s", absl::ToDoubleSeconds(b.restart_at - now)}});
  }
  if (now < b.restart_at) return;
  b.restart_at = absl::InfinitePast();
  auto admin = OpenPassword(*config_.master_keys, row, "admin");
  if (!admin.ok()) return;
  auto server = servers_.EnsureServer(row, *admin);
  if (!server.ok()) {
    log::Warn("database server did not start",
              {{"database_id", id}, {"error", server.status().ToString()}});
    return;
  }
  Restarts().Add({{"why", lost ? "lost" : "exited"}}).Increment();
  log::Info("database server started again", {{"database_id", id}, {"server", server->ref}});
}

}  // namespace c2d::dbprov
