#include "services/deployer/deploy_job.h"

#include <google/protobuf/util/time_util.h>

#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/metrics/metrics.h"
#include "libs/rpc/proto_json.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/deployer/health.h"
#include "services/deployer/metrics.h"

namespace c2d::deployer {
namespace {

using google::protobuf::util::TimeUtil;

// Until an instance first passes, the gate probes it this often (not every
// interval_s), so a deploy goes live as soon as the app answers.
constexpr absl::Duration kGateProbeEvery = absl::Milliseconds(100);

bool IsFinal(v1::DeploymentState s) {
  return s == v1::DEPLOYMENT_STATE_FAILED || s == v1::DEPLOYMENT_STATE_SUPERSEDED ||
         s == v1::DEPLOYMENT_STATE_ROLLED_BACK || s == v1::DEPLOYMENT_STATE_STOPPED;
}

std::string Seconds(absl::Duration d) {
  return absl::StrFormat("%.1f s", absl::ToDoubleSeconds(d));
}

// Sleeps `d` unless the job is cancelled first; false then.
bool SleepUnlessCancelled(jobs::JobContext& ctx, absl::Duration d) {
  const absl::Time until = absl::Now() + d;
  while (absl::Now() < until) {
    if (ctx.cancelled()) return false;
    absl::SleepFor(std::min(absl::Milliseconds(100), until - absl::Now()));
  }
  return !ctx.cancelled();
}

std::string Describe(const v1::HealthCheck& c, int port) {
  if (c.path().empty()) return absl::StrCat("TCP connect to port ", c.port() > 0 ? c.port() : port);
  return absl::StrCat("GET ", c.path(), " on port ", c.port() > 0 ? c.port() : port);
}

// A stop-first release that fails brings back the one it stopped: a
// rollback to it, as a new deployment whose job does the rest. Once: should
// that rollback fail too, nothing else is tried.
absl::Status RestoreRetired(pg::Tx& tx, const v1::Deployment& d) {
  C2D_ASSIGN_OR_RETURN(std::optional<v1::Deployment> stopped, RetiredFor(tx, d.id()));
  if (!stopped || stopped->id() == d.rollback_of()) return absl::OkStatus();
  C2D_ASSIGN_OR_RETURN(
      InsertResult restore,
      InsertDeployment(tx, RollbackTo(*stopped, absl::StrCat("restore-", d.id()))));
  return AddEvent(tx, d.id(), d.service_id(), "", "deployment.restoring",
                  absl::StrCat("bringing back ", stopped->id(),
                               ", which stopped before this release started, as deployment ",
                               restore.deployment.id()));
}

}  // namespace

absl::Status DeployJob::Fail(const v1::Deployment& d, const std::string& reason) {
  log::Warn("deployment failed", {{"deployment_id", d.id()}, {"reason", reason}});
  auto changed =
      runtime_.pool().Transact("fail deployment", [&](pg::Tx& tx) -> absl::StatusOr<bool> {
        auto c = MarkDeploymentFailed(tx, d.id(), reason);
        if (!c.ok() || !*c) return c;
        C2D_RETURN_IF_ERROR(AddEvent(tx, d.id(), d.service_id(), "", "deployment.failed", reason));
        C2D_RETURN_IF_ERROR(RestoreRetired(tx, d));
        return true;
      });
  if (!changed.ok()) return changed.status();
  if (*changed && d.has_started_at()) {
    absl::Duration took =
        absl::Now() - absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(d.started_at()));
    Metrics()
        .deploy_seconds.Add({{"result", "failed"}}, metrics::DurationBuckets())
        .Observe(absl::ToDoubleSeconds(took));
  }
  auto rows = runtime_.pool().Transact(
      "instances", [&](pg::Tx& tx) { return InstancesOfDeployment(tx, d.id()); });
  if (!rows.ok()) return rows.status();
  for (const InstanceRow& row : *rows) {
    if (row.instance.state() == v1::INSTANCE_STATE_STOPPED) continue;
    C2D_RETURN_IF_ERROR(runtime_.StopInstance(row, "its deployment failed"));
  }
  return absl::OkStatus();
}

absl::Status DeployJob::Run(jobs::JobContext& ctx) {
  v1::DeployJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.deployment_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("deploy job payload names no deployment"));
  }
  const std::string& id = payload.deployment_id();
  log::Scope scope(nlohmann::json{{"deployment_id", id}});
  absl::Status s = Attempt(ctx, id);
  if (s.ok() || jobs::IsPermanent(s) || ctx.cancelled() ||
      ctx.job().attempts < ctx.job().max_attempts) {
    return s;
  }
  auto d = runtime_.pool().Transact("load deployment",
                                    [&](pg::Tx& tx) { return GetDeployment(tx, id); });
  if (!d.ok() || (d->state() != v1::DEPLOYMENT_STATE_PENDING &&
                  d->state() != v1::DEPLOYMENT_STATE_DEPLOYING)) {
    return s;  // live already (or ended): nothing to fail
  }
  absl::Status failed =
      Fail(*d, absl::StrCat("gave up after ", ctx.job().attempts, " attempts: ", s.message()));
  return failed.ok() ? jobs::Permanent(s) : failed;
}

absl::Status DeployJob::Attempt(jobs::JobContext& ctx, const std::string& id) {
  pg::Pool& pool = runtime_.pool();
  auto loaded = pool.Transact("load deployment", [&](pg::Tx& tx) { return GetDeployment(tx, id); });
  if (absl::IsNotFound(loaded.status())) return jobs::Permanent(loaded.status());
  if (!loaded.ok()) return loaded.status();
  v1::Deployment d = std::move(*loaded);

  // A re-run after the switch: the ingress may not have followed yet.
  if (d.state() == v1::DEPLOYMENT_STATE_LIVE) return runtime_.SyncIngress(d.service_id());
  if (IsFinal(d.state())) return absl::OkStatus();  // the reconciler removes leftovers

  auto started = pool.Transact("start deployment", [&](pg::Tx& tx) -> absl::StatusOr<bool> {
    const bool first = d.state() == v1::DEPLOYMENT_STATE_PENDING;
    auto marked = MarkDeploying(tx, id);
    if (!marked.ok() || !*marked) return marked;
    C2D_RETURN_IF_ERROR(AddEvent(
        tx, id, d.service_id(), "", first ? "deployment.started" : "deployment.resumed",
        first ? absl::StrCat("starting ", d.spec().run().instance_count(), " instance(s) of ",
                             d.image_repository(), "@", d.image_digest().substr(0, 19))
              : absl::StrCat("carrying on after an interruption (attempt ", ctx.job().attempts,
                             ")")));
    return true;
  });
  if (!started.ok()) return started.status();
  if (!*started) return absl::OkStatus();  // superseded before it began
  loaded = pool.Transact("load deployment", [&](pg::Tx& tx) { return GetDeployment(tx, id); });
  if (!loaded.ok()) return loaded.status();
  d = std::move(*loaded);

  auto env = runtime_.ResolveEnv(d.spec());
  if (absl::IsUnavailable(env.status())) return env.status();  // retried
  if (!env.ok()) return Fail(d, std::string(env.status().message()));

  if (d.spec().volumes_size() > 0 && runtime_.provider().VolumesAttachOnce()) {
    if (Stop stop = StopPrevious(ctx, d)) return *stop;
  }
  std::vector<InstanceRow> rows;
  if (Stop stop = StartInstances(ctx, d, *env, rows)) return *stop;
  std::vector<std::string> refs;
  if (Stop stop = HealthGate(ctx, d, rows, refs)) return *stop;
  if (d.spec().type() != v1::SERVICE_TYPE_WORKER) GiveCertificates(d, refs);
  return Switch(d);
}

DeployJob::Stop DeployJob::StopPrevious(jobs::JobContext& ctx, const v1::Deployment& d) {
  const std::string why = absl::StrCat("stopped before ", d.id(),
                                       " starts: its volumes attach to one instance at a time");
  auto retired =
      runtime_.pool().Transact("retire the live release", [&](pg::Tx& tx) -> absl::StatusOr<bool> {
        C2D_ASSIGN_OR_RETURN(bool any, RetireLive(tx, d, why));
        // A release superseded while it started, after it had stopped the
        // live one: this one takes its place (to restore, should it fail).
        if (!any) {
          C2D_RETURN_IF_ERROR(InheritRetired(tx, d).status());
          return false;
        }
        C2D_RETURN_IF_ERROR(AddEvent(tx, d.id(), d.service_id(), "", "deployment.stopping_previous",
                                     "the live release stops first, as the volumes attach to one "
                                     "instance at a time: the service is down until this one is "
                                     "live (or, should it fail, the previous one is back)"));
        C2D_RETURN_IF_ERROR(runtime_.SyncIngress(tx, d.service_id()));
        return true;
      });
  if (!retired.ok()) return retired.status();
  // Also what an earlier attempt, or a release this one superseded, left.
  auto rows = runtime_.pool().Transact(
      "active instances", [&](pg::Tx& tx) { return ActiveInstances(tx, d.service_id()); });
  if (!rows.ok()) return rows.status();
  std::erase_if(*rows, [&](const InstanceRow& r) { return r.instance.deployment_id() == d.id(); });
  if (rows->empty()) return std::nullopt;
  // What the ingress sent them before the switch away ends first.
  if (*retired && !SleepUnlessCancelled(ctx, absl::FromChrono(runtime_.config().drain_grace))) {
    return absl::CancelledError("deployment superseded or worker stopping");
  }
  for (const InstanceRow& row : *rows) {
    if (ctx.cancelled()) return absl::CancelledError("deployment superseded or worker stopping");
    if (absl::Status s = runtime_.StopInstance(row, why); !s.ok()) return s;  // retried
  }
  return std::nullopt;
}

DeployJob::Stop DeployJob::StartInstances(jobs::JobContext& ctx, const v1::Deployment& d,
                                          const ReleaseEnv& env, std::vector<InstanceRow>& rows) {
  // As many as asked, reusing what an earlier attempt started.
  absl::Status s = runtime_.pool().Transact("create instances", [&](pg::Tx& tx) -> absl::Status {
    auto existing = InstancesOfDeployment(tx, d.id());
    if (!existing.ok()) return existing.status();
    int active = 0;
    for (const InstanceRow& r : *existing) {
      if (r.instance.state() != v1::INSTANCE_STATE_STOPPED) ++active;
    }
    for (int i = active; i < d.spec().run().instance_count(); ++i) {
      C2D_RETURN_IF_ERROR(InsertInstance(tx, ids::New("ins"), d));
    }
    auto all = InstancesOfDeployment(tx, d.id());
    if (!all.ok()) return all.status();
    for (InstanceRow& r : *all) {
      if (r.instance.state() != v1::INSTANCE_STATE_STOPPED) rows.push_back(std::move(r));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  for (const InstanceRow& row : rows) {
    if (ctx.cancelled()) return absl::CancelledError("deployment superseded or worker stopping");
    s = runtime_.EnsureRunning(row, d, env);
    if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) return s;  // retried
    if (!s.ok()) return Fail(d, absl::StrCat("cannot start an instance: ", s.message()));
  }
  return std::nullopt;
}

struct DeployJob::Gate {
  InstanceRow row;
  std::unique_ptr<HealthTracker> tracker;
  std::string last_detail = "not probed yet";
  bool healthy = false;
};

DeployJob::Stop DeployJob::HealthGate(jobs::JobContext& ctx, const v1::Deployment& d,
                                      const std::vector<InstanceRow>& rows,
                                      std::vector<std::string>& refs) {
  const v1::ServiceSpec& spec = d.spec();
  const v1::HealthCheck check = WithDefaults(spec.health_check());
  // A worker is up once it has run for its start period without exiting.
  const absl::Duration gate = spec.type() != v1::SERVICE_TYPE_WORKER
                                  ? GateDeadline(check)
                                  : WorkerSettle(spec) + absl::Seconds(30);
  const absl::Time gate_start = absl::Now(), deadline = gate_start + gate;
  std::vector<Gate> gated;
  for (const InstanceRow& row : rows) {
    auto fresh = runtime_.pool().Transact(
        "instance", [&](pg::Tx& tx) { return GetInstance(tx, row.instance.id()); });
    if (!fresh.ok()) return fresh.status();
    gated.push_back({*fresh, std::make_unique<HealthTracker>(check, gate_start)});
  }
  while (true) {
    bool all = true;
    for (Gate& g : gated) {
      if (g.healthy) continue;
      if (Stop stop = CheckGated(d, check, gate_start, g)) return *stop;
      all &= g.healthy;
    }
    if (all) break;
    if (absl::Now() >= deadline) {
      for (const Gate& g : gated) {
        if (g.healthy) continue;
        return Fail(
            d, absl::StrCat("instance ", g.row.instance.id(), " did not pass its health check (",
                            Describe(check, spec.run().port()), ") within ", Seconds(gate),
                            "; last result: ", g.last_detail));
      }
    }
    if (!SleepUnlessCancelled(ctx, kGateProbeEvery)) {
      return absl::CancelledError("deployment superseded or worker stopping");
    }
  }
  for (const Gate& g : gated) refs.push_back(g.row.instance.provider_ref());
  return std::nullopt;
}

DeployJob::Stop DeployJob::CheckGated(const v1::Deployment& d, const v1::HealthCheck& check,
                                      absl::Time gate_start, Gate& g) {
  const v1::ServiceSpec& spec = d.spec();
  const bool web = spec.type() != v1::SERVICE_TYPE_WORKER;
  const std::string& iid = g.row.instance.id();
  auto info = runtime_.provider().Inspect(g.row.instance.provider_ref());
  if (!info.ok() && !absl::IsNotFound(info.status())) return info.status();
  if (!info.ok() || info->state != cloud::InstanceState::kRunning) {
    std::string why = !info.ok()         ? "its container disappeared"
                      : info->oom_killed ? "it ran out of memory (OOM-killed)"
                                         : absl::StrCat("it exited with code ", info->exit_code);
    std::string reason = absl::StrCat("instance ", iid, " stopped before it became healthy: ", why);
    if (info.ok()) {
      std::vector<std::string> out = runtime_.LastOutput(info->ref, 5);
      if (!out.empty()) absl::StrAppend(&reason, "; its last output: ", absl::StrJoin(out, " | "));
    }
    return Fail(d, reason);
  }
  const absl::Time now = absl::Now();
  if (web) {
    const std::string address = absl::StrCat(
        g.row.instance.host(), ":", check.port() > 0 ? check.port() : g.row.instance.port());
    ProbeResult p = Probe(address, check);
    Metrics()
        .health_checks.Add({{"service", d.service_id()}, {"result", p.ok ? "ok" : "failed"}})
        .Increment();
    Metrics().health_check_seconds.Observe(absl::ToDoubleSeconds(p.latency));
    g.last_detail = p.detail;
    g.healthy = g.tracker->Record(p.ok, now) == Health::kHealthy;
    HealthUpdate h{p.ok, p.detail, g.tracker->consecutive_passes(),
                   g.tracker->consecutive_failures()};
    absl::Status recorded = runtime_.pool().Transact(
        "record health", [&](pg::Tx& tx) { return RecordHealth(tx, iid, h); });
    if (!recorded.ok()) return recorded;
  } else {
    g.healthy = info->started_at.has_value() && now - *info->started_at >= WorkerSettle(spec);
  }
  if (!g.healthy) return std::nullopt;
  const std::string message =
      web ? absl::StrCat(Describe(check, spec.run().port()), ": ", g.last_detail, " after ",
                         Seconds(now - gate_start))
          : absl::StrCat("running for ", Seconds(WorkerSettle(spec)),
                         " (health_check.start_period_s)");
  absl::Status marked =
      runtime_.pool().Transact("instance healthy", [&](pg::Tx& tx) -> absl::Status {
        C2D_RETURN_IF_ERROR(SetInstanceState(tx, iid, v1::INSTANCE_STATE_HEALTHY));
        return AddEvent(tx, d.id(), d.service_id(), iid, "instance.healthy", message);
      });
  if (!marked.ok()) return marked;
  return std::nullopt;
}

void DeployJob::GiveCertificates(const v1::Deployment& d, const std::vector<std::string>& refs) {
  // Instances that terminate TLS themselves serve HTTPS from the moment DNS
  // sends clients to them. Should that fail, they are switched to all the
  // same (plain HTTP serves), and the reconciler tries again at every pass.
  if (absl::Status given = runtime_.GiveCertificates(d, refs); !given.ok()) {
    log::Warn("the new instances have no certificates yet",
              {{"deployment_id", d.id()}, {"error", given.ToString()}});
  }
}

absl::Status DeployJob::Switch(const v1::Deployment& d) {
  // One transaction, which the ingress follows before it commits, so that a
  // deployment is never LIVE while its hostname does not route to it yet.
  // Should the commit fail, the new instances (healthy) serve until the job
  // runs again.
  auto switched = runtime_.pool().Transact("switch", [&](pg::Tx& tx) -> absl::StatusOr<bool> {
    C2D_ASSIGN_OR_RETURN(bool done, SwitchLive(tx, d));
    if (done) C2D_RETURN_IF_ERROR(runtime_.SyncIngress(tx, d.service_id()));
    return done;
  });
  if (!switched.ok()) {
    // Retried (and the reconciler syncs too); the old instances are not
    // stopped before the ingress has left them.
    log::Warn("cannot switch the release", {{"error", switched.status().ToString()}});
    return switched.status();
  }
  if (!*switched) return absl::OkStatus();  // superseded meanwhile; nothing was switched
  const absl::Duration took =
      absl::Now() - absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(d.started_at()));
  Metrics()
      .deploy_seconds.Add({{"result", "live"}}, metrics::DurationBuckets())
      .Observe(absl::ToDoubleSeconds(took));
  log::Info("deployment live",
            {{"service_id", d.service_id()}, {"seconds", absl::ToDoubleSeconds(took)}});
  // The old instances, now DRAINING, finish what the ingress sent them; the
  // reconciler stops them once the drain grace has passed (no worker waits).
  return absl::OkStatus();
}

absl::Status StopJob::Run(jobs::JobContext& ctx) {
  v1::StopJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.service_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("stop job payload names no service"));
  }
  const std::string& service_id = payload.service_id();
  const std::string reason = payload.reason().empty() ? "stopped by request" : payload.reason();
  pg::Pool& pool = runtime_.pool();
  auto changed = pool.Transact("stop deployments",
                               [&](pg::Tx& tx) { return StopDeployments(tx, service_id, reason); });
  if (!changed.ok()) return changed.status();
  C2D_RETURN_IF_ERROR(runtime_.SyncIngress(service_id));
  auto rows = pool.Transact("active instances",
                            [&](pg::Tx& tx) { return ActiveInstances(tx, service_id); });
  if (!rows.ok()) return rows.status();
  if (!rows->empty()) SleepUnlessCancelled(ctx, absl::FromChrono(runtime_.config().drain_grace));
  for (const InstanceRow& row : *rows) {
    C2D_RETURN_IF_ERROR(runtime_.StopInstance(row, reason));
  }
  auto volumes = pool.Transact("volumes", [&](pg::Tx& tx) {
    return VolumesToDelete(tx, service_id, payload.delete_volumes());
  });
  if (!volumes.ok()) return volumes.status();
  for (const v1::Volume& v : *volumes) {
    C2D_RETURN_IF_ERROR(runtime_.DeleteVolume(v));
  }
  return absl::OkStatus();
}

}  // namespace c2d::deployer
