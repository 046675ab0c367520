#include "services/deployer/reconciler.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "services/deployer/deploy_job.h"
#include "services/deployer/health.h"
#include "services/deployer/metrics.h"

namespace c2d::deployer {
namespace {

// The states c2d_instances has a series of for every service.
constexpr const char* kGaugedStates[] = {"starting", "healthy",    "unhealthy",
                                         "draining", "crash_loop", "lost"};

constexpr absl::Duration kMaxBackoff = absl::Minutes(5);
constexpr absl::Duration kCrashWindow = absl::Minutes(10);
constexpr int kCrashLoopRestarts = 5;  // more than this in the window
// How often a starting (or restarted) instance is probed.
constexpr absl::Duration kStartingProbeEvery = absl::Seconds(1);
// Health checks run at once in a pass.
constexpr size_t kProbesAtOnce = 32;
// Every this many passes: trim log tails, rewrite every ingress entry.
constexpr int kHousekeepingEvery = 15;

Health ToHealth(v1::InstanceState s) {
  switch (s) {
    case v1::INSTANCE_STATE_HEALTHY:
      return Health::kHealthy;
    case v1::INSTANCE_STATE_UNHEALTHY:
      return Health::kUnhealthy;
    default:
      return Health::kStarting;
  }
}

std::string Seconds(absl::Duration d) {
  return absl::StrFormat("%.1f s", absl::ToDoubleSeconds(d));
}

}  // namespace

Reconciler::Reconciler(Runtime& runtime)
    : runtime_(runtime),
      followers_(runtime,
                 3 * absl::FromChrono(runtime.config().reconcile_interval) + absl::Seconds(5)) {}

void Reconciler::LoadDeployments() {
  deployments_.clear();
  auto live =
      runtime_.pool().Read("live deployments", [](pg::Tx& tx) { return LiveDeployments(tx); });
  if (!live.ok()) return;  // each is read when needed
  for (v1::Deployment& d : *live) {
    std::string id = d.id();
    deployments_.emplace(std::move(id), std::move(d));
  }
}

const v1::Deployment* Reconciler::Deployment(const std::string& id) {
  auto it = deployments_.find(id);
  if (it != deployments_.end()) return &it->second;
  auto d =
      runtime_.pool().Transact("deployment", [&](pg::Tx& tx) { return GetDeployment(tx, id); });
  if (!d.ok()) return nullptr;
  return &deployments_.emplace(id, std::move(*d)).first->second;
}

void Reconciler::AddStaleCustomRoutes(std::set<std::string>& services) {
  // (What SyncIngress last wrote names the custom domains: these syncs write.)
  auto stale = runtime_.pool().Read(
      "custom routes", [](pg::Tx& tx) { return ServicesWithStaleCustomRoutes(tx, 100); });
  if (!stale.ok()) {
    log::Warn("reconcile: cannot read custom routes", {{"error", stale.status().ToString()}});
    return;
  }
  services.insert(stale->begin(), stale->end());
}

void Reconciler::RunOnce() {
  // Containers first, rows second: a container's row is inserted before the
  // container is made, so every container listed has its row in the read.
  auto containers = runtime_.provider().List(runtime_.OwnLabels());
  if (!containers.ok()) {
    log::Warn("reconcile: cannot list instances", {{"error", containers.status().ToString()}});
    return;
  }
  auto rows =
      runtime_.pool().Transact("active instances", [](pg::Tx& tx) { return ActiveInstances(tx); });
  if (!rows.ok()) {
    log::Warn("reconcile: cannot read instances", {{"error", rows.status().ToString()}});
    return;
  }
  LoadDeployments();
  std::vector<DueProbe> due;
  std::map<std::string, const cloud::Instance*> by_instance;
  for (const cloud::Instance& c : *containers) {
    auto label = c.labels.find(kInstanceLabel);
    if (label != c.labels.end()) by_instance[label->second] = &c;
  }
  std::set<std::string> known, touched;
  std::map<std::string, std::map<std::string, double>> by_service;  // service -> state -> n
  for (const InstanceRow& row : *rows) {
    const std::string& id = row.instance.id();
    known.insert(id);
    const cloud::Instance* c = by_instance.count(id) ? by_instance[id] : nullptr;
    switch (row.deployment_state) {
      case v1::DEPLOYMENT_STATE_PENDING:
      case v1::DEPLOYMENT_STATE_DEPLOYING:
        break;  // the deploy job owns them
      case v1::DEPLOYMENT_STATE_LIVE:
        if (row.instance.state() != v1::INSTANCE_STATE_DRAINING && HandleLive(row, c, due)) {
          touched.insert(row.instance.service_id());
        }
        break;
      default:
        if (Retire(row)) {
          touched.insert(row.instance.service_id());
          continue;
        }
    }
    by_service[row.instance.service_id()][StateName(row.instance.state())] += 1;
  }
  ProbeDue(due, touched);
  RemoveOrphans(*containers, known);
  if (++passes_ % kHousekeepingEvery == 0) Housekeeping(*rows, touched);
  DeleteUnmountedVolumes(*rows);
  AddStaleCustomRoutes(touched);
  for (const std::string& service : touched) {
    if (auto s = runtime_.SyncIngress(service); !s.ok()) {
      log::Warn("reconcile: cannot update the ingress",
                {{"service_id", service}, {"error", s.ToString()}});
    }
  }
  ExportGauges(by_service);
  // Follow the output of every instance still there.
  auto current =
      runtime_.pool().Transact("active instances", [](pg::Tx& tx) { return ActiveInstances(tx); });
  if (current.ok()) {
    followers_.Sync(*current);
    PushCertificates(*current);
  }
}

void Reconciler::PushCertificates(const std::vector<InstanceRow>& rows) {
  if (!runtime_.GivesCertificates()) return;
  auto names = runtime_.pool().Transact("served names", [](pg::Tx& tx) { return ServedNames(tx); });
  if (!names.ok()) {
    log::Warn("reconcile: cannot read services' names", {{"error", names.status().ToString()}});
    return;
  }
  std::set<std::string> refs;  // every instance there is
  for (const InstanceRow& row : rows) {
    const v1::Instance& i = row.instance;
    if (!i.provider_ref().empty()) refs.insert(i.provider_ref());
    // Healthy: its Caddy answers, and so does the admin API beside it.
    auto served = names->find(i.service_id());
    if (i.state() != v1::INSTANCE_STATE_HEALTHY || i.provider_ref().empty() ||
        served == names->end()) {
      continue;
    }
    if (absl::Status s = runtime_.GiveCertificates({i.provider_ref()}, served->second); !s.ok()) {
      log::Warn("reconcile: cannot give an instance its certificates",
                {{"instance_id", i.id()}, {"error", s.ToString()}});
    }
  }
  runtime_.RetainCertificates(refs);
}

bool Reconciler::Retire(const InstanceRow& row) {
  // The deployment ended: its instances go, draining ones after the grace.
  const bool draining = row.instance.state() == v1::INSTANCE_STATE_DRAINING;
  if (draining && absl::Now() < row.updated_at + absl::FromChrono(runtime_.config().drain_grace)) {
    return false;
  }
  // The ingress must not list it when it stops.
  if (draining && !runtime_.SyncIngress(row.instance.service_id()).ok()) return false;
  const std::string why = draining
                              ? "drained after a newer deployment went live"
                              : absl::StrCat("its deployment is ", StateName(row.deployment_state));
  if (auto s = runtime_.StopInstance(row, why); !s.ok()) {
    log::Warn("reconcile: cannot stop an instance",
              {{"instance_id", row.instance.id()}, {"error", s.ToString()}});
  }
  return true;
}

void Reconciler::RemoveOrphans(const std::vector<cloud::Instance>& containers,
                               const std::set<std::string>& known) {
  // Containers that no instance row accounts for (stopped rows whose
  // removal failed, duplicates).
  for (const cloud::Instance& c : containers) {
    auto label = c.labels.find(kInstanceLabel);
    const bool orphan = label == c.labels.end() || !known.count(label->second);
    if (!orphan) continue;
    log::Info("reconcile: removing a container no instance accounts for", {{"ref", c.ref}});
    (void)runtime_.provider().Stop(c.ref, runtime_.config().stop_grace);
    (void)runtime_.provider().Remove(c.ref);
  }
}

void Reconciler::Housekeeping(const std::vector<InstanceRow>& rows,
                              std::set<std::string>& touched) {
  // Every route written afresh (drift repair), every runtime log trimmed.
  runtime_.ForgetIngress();
  std::vector<std::string> ids;
  for (const InstanceRow& row : rows) {
    touched.insert(row.instance.service_id());
    ids.push_back(row.instance.id());
  }
  if (auto s = runtime_.pool().Transact("trim runtime logs",
                                        [&](pg::Tx& tx) {
                                          return TrimRuntimeLogs(
                                              tx, ids, runtime_.config().log_lines_per_instance);
                                        });
      !s.ok()) {
    log::Warn("reconcile: cannot trim runtime logs", {{"error", s.ToString()}});
  }
}

void Reconciler::LostLeadership() {
  followers_.StopAll();
  for (const std::string& service : gauged_) {
    for (const char* state : kGaugedStates) {
      auto& family = Metrics().instances;
      family.Remove(&family.Add({{"service", service}, {"state", state}}));
    }
  }
  gauged_.clear();
}

void Reconciler::ExportGauges(std::map<std::string, std::map<std::string, double>>& by_service) {
  // Every state of every service seen, this pass or before (then 0).
  for (const auto& [service, states] : by_service) gauged_.insert(service);
  for (const std::string& service : gauged_) {
    for (const char* state : kGaugedStates) {
      Metrics()
          .instances.Add({{"service", service}, {"state", state}})
          .Set(by_service[service][state]);
    }
  }
}

void Reconciler::DeleteUnmountedVolumes(const std::vector<InstanceRow>& rows) {
  auto deleting =
      runtime_.pool().Transact("deleting volumes", [](pg::Tx& tx) { return DeletingVolumes(tx); });
  if (!deleting.ok()) return;
  for (const v1::Volume& v : *deleting) {
    // Not while an instance of the service drains: it may still write there.
    bool draining = false;
    for (const InstanceRow& row : rows) {
      draining |= row.instance.service_id() == v.service_id() &&
                  row.instance.state() == v1::INSTANCE_STATE_DRAINING;
    }
    if (draining) continue;
    auto by = runtime_.pool().Transact("volume mounts",
                                       [&](pg::Tx& tx) { return DeploymentMounting(tx, v); });
    if (!by.ok() || by->has_value()) continue;
    log::Info("reconcile: deleting a volume no release mounts any more", {{"volume_id", v.id()}});
    if (auto s = runtime_.DeleteVolume(v); !s.ok()) {
      log::Warn("reconcile: cannot delete a volume",
                {{"volume_id", v.id()}, {"error", s.ToString()}});
    }
  }
}

bool Reconciler::ReplaceLost(const InstanceRow& row, const v1::Deployment& d) {
  const std::string& id = row.instance.id();
  if (row.next_restart_at && absl::Now() < *row.next_restart_at) return false;
  if (row.instance.state() != v1::INSTANCE_STATE_LOST) {
    (void)runtime_.pool().Transact("instance lost", [&](pg::Tx& tx) -> absl::Status {
      C2D_RETURN_IF_ERROR(SetInstanceState(tx, id, v1::INSTANCE_STATE_LOST));
      return AddEvent(tx, d.id(), d.service_id(), id, "instance.lost",
                      "its container is gone (removed outside c2d); replacing it");
    });
  }
  Restart(row, d, "its container was gone: recreated", RestartCause::kLost);
  return true;
}

bool Reconciler::RestartExited(const InstanceRow& row, const cloud::Instance& c,
                               const v1::Deployment& d) {
  if (row.next_restart_at && absl::Now() < *row.next_restart_at) {
    // Waiting out the backoff; make sure it is out of rotation meanwhile.
    if (row.instance.state() != v1::INSTANCE_STATE_HEALTHY) return false;
    (void)runtime_.pool().Transact("instance down", [&](pg::Tx& tx) {
      return SetInstanceState(tx, row.instance.id(), v1::INSTANCE_STATE_STARTING);
    });
    return true;
  }
  Restart(row, d,
          c.oom_killed ? "it ran out of memory (OOM-killed)"
                       : absl::StrCat("it exited with code ", c.exit_code),
          RestartCause::kExited);
  return true;
}

bool Reconciler::HandleLive(const InstanceRow& row, const cloud::Instance* c,
                            std::vector<DueProbe>& due) {
  const std::string& id = row.instance.id();
  const v1::Deployment* d = Deployment(row.instance.deployment_id());
  if (d == nullptr) return false;
  const absl::Time now = absl::Now();
  // Listed as exited but gone since: removed outside c2d (the engine lists a
  // container it is removing as exited), so lost, not crashed.
  if (c != nullptr && c->state != cloud::InstanceState::kRunning &&
      absl::IsNotFound(runtime_.provider().Inspect(c->ref).status())) {
    c = nullptr;
  }
  if (c == nullptr) return ReplaceLost(row, *d);
  // Being stopped or removed by someone else: see what is left next pass.
  if (c->state == cloud::InstanceState::kStopping) return false;
  if (c->state != cloud::InstanceState::kRunning) return RestartExited(row, *c, *d);
  // Running: probe when due.
  const v1::ServiceSpec& spec = d->spec();
  const v1::InstanceState state = row.instance.state();
  if (spec.type() == v1::SERVICE_TYPE_WORKER) {
    if (state == v1::INSTANCE_STATE_HEALTHY || !c->started_at ||
        now - *c->started_at < WorkerSettle(spec)) {
      return false;
    }
    (void)runtime_.pool().Transact("worker up", [&](pg::Tx& tx) -> absl::Status {
      C2D_RETURN_IF_ERROR(SetInstanceState(tx, id, v1::INSTANCE_STATE_HEALTHY));
      return AddEvent(tx, d->id(), d->service_id(), id, "instance.healthy", "running again");
    });
    return true;
  }
  const v1::HealthCheck check = WithDefaults(spec.health_check());
  const bool starting =
      state != v1::INSTANCE_STATE_HEALTHY && state != v1::INSTANCE_STATE_UNHEALTHY;
  const absl::Duration every =
      starting ? std::min(kStartingProbeEvery, absl::Seconds(check.interval_s()))
               : absl::Seconds(check.interval_s());
  if (row.instance.has_last_health_check()) {
    absl::Time last = absl::FromUnixSeconds(row.instance.last_health_check().time().seconds()) +
                      absl::Nanoseconds(row.instance.last_health_check().time().nanos());
    if (now - last < every) return false;
  }
  if (row.instance.host().empty() || row.instance.port() == 0) return false;
  due.push_back({.row = &row,
                 .deployment = d,
                 .started_at = c->started_at.value_or(now),
                 .check = check,
                 .address = absl::StrCat(row.instance.host(), ":",
                                         check.port() > 0 ? check.port() : row.instance.port()),
                 .result = {}});
  return false;
}

void Reconciler::ProbeDue(std::vector<DueProbe>& due, std::set<std::string>& touched) {
  if (due.empty()) return;
  // A few at a time: a pass waits for about its slowest probes, not for the
  // sum of all of them.
  std::atomic<size_t> next{0};
  std::vector<std::thread> probers;
  for (size_t i = 0; i < std::min(due.size(), kProbesAtOnce); ++i) {
    probers.emplace_back([&] {
      for (size_t k; (k = next++) < due.size();) {
        due[k].result = Probe(due[k].address, due[k].check);
      }
    });
  }
  for (std::thread& t : probers) t.join();
  const absl::Time now = absl::Now();
  std::vector<HealthTracker> trackers;
  std::vector<Health> health;
  std::vector<std::pair<std::string, HealthUpdate>> updates;
  for (const DueProbe& p : due) {
    const InstanceRow& row = *p.row;
    Metrics()
        .health_checks
        .Add({{"service", row.instance.service_id()}, {"result", p.result.ok ? "ok" : "failed"}})
        .Increment();
    Metrics().health_check_seconds.Observe(absl::ToDoubleSeconds(p.result.latency));
    HealthTracker& tracker = trackers.emplace_back(p.check, p.started_at);
    tracker.Restore(ToHealth(row.instance.state()), row.consecutive_passes,
                    row.consecutive_failures);
    health.push_back(tracker.Record(p.result.ok, now));
    updates.push_back({row.instance.id(),
                       {p.result.ok, p.result.detail, tracker.consecutive_passes(),
                        tracker.consecutive_failures()}});
  }
  if (auto s = runtime_.pool().Transact("record health",
                                        [&](pg::Tx& tx) { return RecordHealths(tx, updates); });
      !s.ok()) {
    log::Warn("reconcile: cannot record health checks", {{"error", s.ToString()}});
  }
  for (size_t i = 0; i < due.size(); ++i) {
    if (ApplyProbe(due[i], trackers[i], health[i]))
      touched.insert(due[i].row->instance.service_id());
  }
}

bool Reconciler::ApplyProbe(const DueProbe& probe, const HealthTracker& tracker, Health health) {
  const InstanceRow& row = *probe.row;
  const v1::Deployment& d = *probe.deployment;
  const std::string& id = row.instance.id();
  const std::string& detail = probe.result.detail;
  const v1::InstanceState state = row.instance.state();
  const absl::Time now = absl::Now();
  if (health == Health::kHealthy && state != v1::INSTANCE_STATE_HEALTHY) {
    (void)runtime_.pool().Transact("instance healthy", [&](pg::Tx& tx) -> absl::Status {
      C2D_RETURN_IF_ERROR(SetInstanceState(tx, id, v1::INSTANCE_STATE_HEALTHY));
      return AddEvent(tx, d.id(), d.service_id(), id, "instance.healthy",
                      absl::StrCat(detail, "; back in rotation"));
    });
    return true;
  }
  if (health != Health::kUnhealthy) return false;
  if (row.next_restart_at && now < *row.next_restart_at && state == v1::INSTANCE_STATE_UNHEALTHY) {
    return false;
  }
  (void)runtime_.pool().Transact("instance unhealthy", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(SetInstanceState(tx, id, v1::INSTANCE_STATE_UNHEALTHY));
    return AddEvent(
        tx, d.id(), d.service_id(), id, "instance.unhealthy",
        absl::StrCat("failed ", tracker.consecutive_failures(), " health checks in a row (", detail,
                     "); out of rotation, restarting"));
  });
  // Out of rotation before the restart.
  (void)runtime_.SyncIngress(row.instance.service_id());
  if (!row.next_restart_at || now >= *row.next_restart_at) {
    Restart(row, d, absl::StrCat("it failed its health check: ", detail), RestartCause::kUnhealthy);
  }
  return true;
}

void Reconciler::Restart(const InstanceRow& row, const v1::Deployment& d, const std::string& reason,
                         RestartCause cause) {
  const std::string& id = row.instance.id();
  const Config& config = runtime_.config();
  auto env = runtime_.ResolveEnv(d.spec());
  if (!env.ok()) {
    log::Warn("reconcile: cannot restart an instance",
              {{"instance_id", id}, {"error", env.status().ToString()}});
    return;
  }
  const std::string& ref = row.instance.provider_ref();
  if (cause == RestartCause::kUnhealthy && !ref.empty()) {
    (void)runtime_.provider().Stop(ref, config.stop_grace);
  }
  const absl::Time now = absl::Now();
  auto recent = runtime_.pool().Transact(
      "restarts", [&](pg::Tx& tx) { return RestartsSince(tx, id, now - kCrashWindow); });
  if (!recent.ok()) return;
  const int count = *recent + 1;
  const bool crash_loop = count > kCrashLoopRestarts;
  absl::Duration backoff = absl::FromChrono(config.restart_backoff);
  for (int i = 0; i < *recent && backoff < kMaxBackoff; ++i) backoff *= 2;
  backoff = std::min(backoff, kMaxBackoff);
  // Out of rotation before the new container is recorded: no reader may see
  // the instance healthy at an address not yet probed.
  if (row.instance.state() == v1::INSTANCE_STATE_HEALTHY &&
      !runtime_.pool()
           .Transact(
               "instance restarting",
               [&](pg::Tx& tx) { return SetInstanceState(tx, id, v1::INSTANCE_STATE_STARTING); })
           .ok()) {
    return;
  }
  absl::Status s = runtime_.EnsureRunning(row, d, *env);
  if (!s.ok()) {
    log::Warn("reconcile: cannot restart an instance",
              {{"instance_id", id}, {"error", s.ToString()}});
    // Removed outside c2d while being restarted (the engine refuses to start
    // a container it is stopping or removing): not a restart; the next pass
    // finds it gone and replaces it, counting that once.
    if (cause != RestartCause::kLost && !ref.empty()) {
      auto now_seen = runtime_.provider().Inspect(ref);
      if (absl::IsNotFound(now_seen.status()) ||
          (now_seen.ok() && now_seen->state == cloud::InstanceState::kStopping)) {
        return;
      }
    }
  }
  Metrics().restarts.Add({{"service", d.service_id()}}).Increment();
  const std::string message = absl::StrCat(
      reason, s.ok() ? "" : absl::StrCat("; the restart failed: ", s.message()), " (restart ",
      count, " in 10 min; the next one not before ", Seconds(backoff), ")");
  (void)runtime_.pool().Transact("instance restarted", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(RecordRestart(tx, id, now + backoff, crash_loop));
    C2D_RETURN_IF_ERROR(AddEvent(tx, d.id(), d.service_id(), id, "instance.restarted", message));
    if (crash_loop && row.instance.state() != v1::INSTANCE_STATE_CRASH_LOOP) {
      C2D_RETURN_IF_ERROR(AddEvent(
          tx, d.id(), d.service_id(), id, "instance.crash_loop",
          absl::StrCat("restarted ", count, " times in 10 minutes; restarts go on with backoff")));
    }
    return AppendRuntimeLogs(tx, d.service_id(), id,
                             {{"system", absl::StrCat("restarted: ", message)}});
  });
  log::Info("instance restarted", {{"instance_id", id}, {"reason", reason}, {"count", count}});
}

}  // namespace c2d::deployer
