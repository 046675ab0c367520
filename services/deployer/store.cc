#include "services/deployer/store.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/status.h"
#include "libs/jobs/queue.h"
#include "libs/pg/rows.h"
#include "libs/rpc/proto_json.h"
#include "nlohmann/json.hpp"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/deployer/store_rows.h"

namespace c2d::deployer {
namespace {

#define C2D_DEPLOYMENT_COLUMNS \
  "id, service_id, project_id, build_id, image_repository, image_digest, spec::text, "     \
  "state, coalesce(failure_reason, ''), coalesce(rollback_of, ''), " C2D_MICROS(           \
      "created_at") ", " C2D_MICROS("started_at") ", " C2D_MICROS("live_at") ", " C2D_MICROS( \
      "finished_at")

#define C2D_INSTANCE_COLUMNS \
  "i.id, i.deployment_id, i.service_id, i.state, coalesce(i.provider_ref, ''), "             \
  "coalesce(i.host, ''), coalesce(i.port, 0), i.restarts, " C2D_MICROS(                      \
      "i.last_health_check_at") ", i.last_health_ok, coalesce(i.last_health_detail, ''), " \
      C2D_MICROS("i.created_at") ", " C2D_MICROS("i.stopped_at") ", d.state, "             \
      "i.consecutive_passes, i.consecutive_failures, " C2D_MICROS(                        \
          "i.last_restart_at") ", " C2D_MICROS("i.next_restart_at") ", " C2D_MICROS("i.updated_at") \
          ", coalesce(i.private_address, '')"

constexpr pg::Statement kStaleCustomRoutes{"deployer_stale_custom_routes", R"sql(
SELECT d.service_id FROM domains d JOIN service_routes sr ON sr.service_id = d.service_id
WHERE d.kind = 'custom' AND d.verification_state = 'verified'
  AND NOT EXISTS (SELECT 1 FROM custom_routes r
                  WHERE r.hostname = d.hostname AND r.service_id = d.service_id)
UNION
SELECT r.service_id FROM custom_routes r
WHERE NOT EXISTS (SELECT 1 FROM domains d
                  WHERE d.hostname = r.hostname AND d.service_id = r.service_id
                    AND d.kind = 'custom' AND d.verification_state = 'verified')
LIMIT $1)sql"};

constexpr pg::Statement kServedNames{"deployer_served_names", R"sql(
SELECT r.service_id, r.hostname, 0 AS custom FROM service_routes r
UNION ALL
SELECT d.service_id, d.hostname, 1 FROM domains d JOIN service_routes r USING (service_id)
WHERE d.kind = 'custom' AND d.verification_state = 'verified'
ORDER BY 1, 3, 2)sql"};

constexpr pg::Statement kInstallation{"installation_id", "SELECT id FROM installation"};

constexpr pg::Statement kInsertDeployment{"deployments_insert", R"sql(
INSERT INTO deployments (id, service_id, project_id, build_id, request_id, image_repository,
                         image_digest, spec, rollback_of)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, $8::jsonb, NULLIF($9, ''))
ON CONFLICT (service_id, request_id) DO NOTHING
RETURNING id)sql"};

constexpr pg::Statement kByRequest{"deployments_by_request", "SELECT " C2D_DEPLOYMENT_COLUMNS
                                                             R"sql(
FROM deployments WHERE service_id = $1 AND request_id = $2)sql"};

constexpr pg::Statement kSupersede{"deployments_supersede", R"sql(
UPDATE deployments SET state = 'superseded', finished_at = now(), updated_at = now()
WHERE service_id = $1 AND id <> $2 AND state IN ('pending', 'deploying')
RETURNING id)sql"};

constexpr pg::Statement kCancelDeployJob{"deployments_cancel_job", R"sql(
UPDATE jobs SET state = 'cancelled', lease_until = NULL, locked_by = NULL,
                finished_at = now(), updated_at = now()
WHERE queue = 'deployer' AND unique_key = $1 AND state IN ('available', 'running'))sql"};

constexpr pg::Statement kGetDeployment{
    "deployments_get", "SELECT " C2D_DEPLOYMENT_COLUMNS " FROM deployments WHERE id = $1"};
constexpr pg::Statement kLockDeployment{"deployments_lock",
                                        "SELECT " C2D_DEPLOYMENT_COLUMNS
                                        " FROM deployments WHERE id = $1 FOR UPDATE"};
constexpr pg::Statement kLive{"deployments_live",
                              "SELECT " C2D_DEPLOYMENT_COLUMNS
                              " FROM deployments WHERE service_id = $1 AND state = 'live'"};
constexpr pg::Statement kAllLive{"deployments_all_live", "SELECT " C2D_DEPLOYMENT_COLUMNS
                                                         " FROM deployments WHERE state = 'live'"};
constexpr pg::Statement kRoutedServices{"deployments_routed_services", R"sql(
SELECT service_id FROM deployments WHERE project_id = $1 AND state = 'live'
UNION
SELECT r.service_id FROM service_routes r JOIN services s ON s.id = r.service_id
WHERE s.project_id = $1)sql"};
constexpr pg::Statement kPreviousLive{"deployments_previous_live",
                                      "SELECT " C2D_DEPLOYMENT_COLUMNS R"sql(
FROM deployments
WHERE service_id = $1 AND live_at IS NOT NULL AND state <> 'live'
  AND live_at < coalesce((SELECT max(live_at) FROM deployments
                          WHERE service_id = $1 AND state = 'live'), 'infinity')
ORDER BY live_at DESC, id DESC LIMIT 1)sql"};
constexpr pg::Statement kListDeployments{"deployments_list", "SELECT " C2D_DEPLOYMENT_COLUMNS
                                                             R"sql(
FROM deployments WHERE service_id = $1 AND ($2 = '' OR id < $2)
ORDER BY id DESC LIMIT $3)sql"};

constexpr pg::Statement kMarkDeploying{"deployments_deploying", R"sql(
UPDATE deployments SET state = 'deploying', started_at = coalesce(started_at, now()),
                       updated_at = now()
WHERE id = $1 AND state IN ('pending', 'deploying') RETURNING id)sql"};

constexpr pg::Statement kMarkFailed{"deployments_failed", R"sql(
UPDATE deployments SET state = 'failed', failure_reason = $2, finished_at = now(),
                       updated_at = now()
WHERE id = $1 AND state IN ('pending', 'deploying') RETURNING id)sql"};

// Old row first: the unique index allows one live deployment per service.
constexpr pg::Statement kRetireLive{"deployments_retire_live", R"sql(
UPDATE deployments SET state = $3, replaced_by = $2, finished_at = now(), updated_at = now()
WHERE service_id = $1 AND id <> $2 AND state = 'live' RETURNING id)sql"};

// The deployment a stop-first release retired passes to the release that
// superseded that one (or that followed it after it failed) before it went
// live.
constexpr pg::Statement kInheritRetired{"deployments_inherit_retired", R"sql(
UPDATE deployments SET replaced_by = $2, updated_at = now()
WHERE service_id = $1 AND state IN ('superseded', 'rolled_back')
  AND replaced_by IN (SELECT id FROM deployments
                      WHERE service_id = $1 AND id <> $2 AND live_at IS NULL
                        AND state IN ('superseded', 'failed'))
RETURNING id)sql"};

constexpr pg::Statement kRetiredFor{"deployments_retired_for", "SELECT " C2D_DEPLOYMENT_COLUMNS
                                                               R"sql(
FROM deployments WHERE replaced_by = $1 AND state IN ('superseded', 'rolled_back')
ORDER BY live_at DESC LIMIT 1)sql"};

constexpr pg::Statement kMakeLive{"deployments_make_live", R"sql(
UPDATE deployments SET state = 'live', live_at = now(), updated_at = now()
WHERE id = $1 AND state = 'deploying' RETURNING id)sql"};

constexpr pg::Statement kStopLive{"deployments_stop_live", R"sql(
UPDATE deployments SET state = 'stopped', finished_at = now(), updated_at = now()
WHERE service_id = $1 AND state = 'live' RETURNING id)sql"};

constexpr pg::Statement kSupersedeAll{"deployments_supersede_all", R"sql(
UPDATE deployments SET state = 'superseded', finished_at = now(), updated_at = now()
WHERE service_id = $1 AND state IN ('pending', 'deploying') RETURNING id)sql"};

constexpr pg::Statement kDrainOf{"instances_drain_of", R"sql(
UPDATE instances SET state = 'draining', updated_at = now()
WHERE deployment_id = $1 AND state NOT IN ('stopped', 'draining'))sql"};

constexpr pg::Statement kInsertInstance{"instances_insert", R"sql(
INSERT INTO instances (id, deployment_id, service_id, provider, port)
VALUES ($1, $2, $3, 'local', NULLIF($4, 0)))sql"};

constexpr pg::Statement kSetRef{"instances_set_ref", R"sql(
UPDATE instances SET provider_ref = $2, host = NULLIF($3, ''), port = NULLIF($4, 0),
                     private_address = NULLIF($5, ''), updated_at = now()
WHERE id = $1)sql"};

constexpr pg::Statement kSetState{"instances_set_state", R"sql(
UPDATE instances SET state = $2, updated_at = now(),
                     stopped_at = CASE WHEN $2 = 'stopped' THEN coalesce(stopped_at, now()) END
WHERE id = $1 AND (state <> 'stopped' OR $2 = 'stopped'))sql"};

constexpr pg::Statement kHealth{"instances_health", R"sql(
UPDATE instances SET last_health_check_at = now(), last_health_ok = $2, last_health_detail = $3,
                     consecutive_passes = $4, consecutive_failures = $5, updated_at = now()
WHERE id = $1)sql"};

constexpr pg::Statement kHealths{"instances_healths", R"sql(
UPDATE instances i SET last_health_check_at = now(), last_health_ok = h.ok,
                       last_health_detail = h.detail, consecutive_passes = h.passes,
                       consecutive_failures = h.failures, updated_at = now()
FROM jsonb_to_recordset($1::jsonb) AS h(id text, ok boolean, detail text, passes int, failures int)
WHERE i.id = h.id)sql"};

constexpr pg::Statement kRestart{"instances_restart", R"sql(
UPDATE instances SET restarts = restarts + 1, last_restart_at = now(),
                     next_restart_at = to_timestamp($2::double precision / 1000000),
                     state = CASE WHEN $3 THEN 'crash_loop' ELSE 'starting' END,
                     consecutive_passes = 0, consecutive_failures = 0, updated_at = now()
WHERE id = $1 AND state <> 'stopped')sql"};

constexpr pg::Statement kInstancesOf{"instances_of_deployment", "SELECT " C2D_INSTANCE_COLUMNS
                                                                R"sql(
FROM instances i JOIN deployments d ON d.id = i.deployment_id
WHERE i.deployment_id = $1 ORDER BY i.id)sql"};

constexpr pg::Statement kActive{"instances_active", "SELECT " C2D_INSTANCE_COLUMNS R"sql(
FROM instances i JOIN deployments d ON d.id = i.deployment_id
WHERE i.state <> 'stopped' AND ($1 = '' OR i.service_id = $1) ORDER BY i.service_id, i.id)sql"};

constexpr pg::Statement kGetInstance{"instances_get", "SELECT " C2D_INSTANCE_COLUMNS R"sql(
FROM instances i JOIN deployments d ON d.id = i.deployment_id WHERE i.id = $1)sql"};

constexpr pg::Statement kListInstances{"instances_list", "SELECT " C2D_INSTANCE_COLUMNS R"sql(
FROM instances i JOIN deployments d ON d.id = i.deployment_id
WHERE i.service_id = $1 AND ($2 = '' OR i.deployment_id = $2)
  AND ($3 OR i.state <> 'stopped') AND ($4 = '' OR i.id < $4)
ORDER BY i.id DESC LIMIT $5)sql"};

constexpr pg::Statement kRestartsSince{"instances_restarts_since", R"sql(
SELECT count(*) FROM deployment_events
WHERE instance_id = $1 AND kind = 'instance.restarted'
  AND at >= to_timestamp($2::double precision / 1000000))sql"};

constexpr pg::Statement kAddEvent{"events_add", R"sql(
INSERT INTO deployment_events (id, deployment_id, service_id, instance_id, kind, message)
VALUES ($1, $2, $3, NULLIF($4, ''), $5, left($6, 2000)))sql"};

constexpr pg::Statement kReadEvents{"events_read", R"sql(
SELECT id, seq, deployment_id, service_id, coalesce(instance_id, ''), kind, message,
       (extract(epoch FROM at) * 1000000)::bigint
FROM deployment_events
WHERE ($1 = '' OR deployment_id = $1) AND ($2 = '' OR service_id = $2) AND seq > $3
ORDER BY seq LIMIT $4)sql"};

v1::Deployment RowToDeployment(const pqxx::row& r) {
  v1::Deployment d;
  d.set_id(r[0].as<std::string>());
  d.set_service_id(r[1].as<std::string>());
  d.set_project_id(r[2].as<std::string>());
  d.set_build_id(r[3].as<std::string>());
  d.set_image_repository(r[4].as<std::string>());
  d.set_image_digest(r[5].as<std::string>());
  (void)rpc::FromJson(r[6].as<std::string>(), d.mutable_spec());  // validated when written
  d.set_state(rows::ParseEnum<v1::DeploymentState>("DEPLOYMENT_STATE_", r[7].as<std::string>(),
                                                   v1::DeploymentState_Parse));
  d.set_failure_reason(r[8].as<std::string>());
  d.set_rollback_of(r[9].as<std::string>());
  pg::SetTime(r[10], d.mutable_created_at());
  pg::SetTime(r[11], d.mutable_started_at());
  pg::SetTime(r[12], d.mutable_live_at());
  pg::SetTime(r[13], d.mutable_finished_at());
  return d;
}

InstanceRow RowToInstance(const pqxx::row& r) {
  InstanceRow row;
  v1::Instance& i = row.instance;
  i.set_id(r[0].as<std::string>());
  i.set_deployment_id(r[1].as<std::string>());
  i.set_service_id(r[2].as<std::string>());
  i.set_state(rows::ParseEnum<v1::InstanceState>("INSTANCE_STATE_", r[3].as<std::string>(),
                                                 v1::InstanceState_Parse));
  i.set_provider_ref(r[4].as<std::string>());
  i.set_host(r[5].as<std::string>());
  i.set_port(r[6].as<int>());
  i.set_restarts(r[7].as<int>());
  if (!r[8].is_null()) {
    pg::SetTime(r[8], i.mutable_last_health_check()->mutable_time());
    i.mutable_last_health_check()->set_ok(!r[9].is_null() && r[9].as<bool>());
    i.mutable_last_health_check()->set_detail(r[10].as<std::string>());
  }
  pg::SetTime(r[11], i.mutable_created_at());
  pg::SetTime(r[12], i.mutable_stopped_at());
  row.deployment_state = rows::ParseEnum<v1::DeploymentState>(
      "DEPLOYMENT_STATE_", r[13].as<std::string>(), v1::DeploymentState_Parse);
  row.consecutive_passes = r[14].as<int>();
  row.consecutive_failures = r[15].as<int>();
  row.last_restart_at = pg::OptTime(r[16]);
  row.next_restart_at = pg::OptTime(r[17]);
  row.updated_at = pg::OptTime(r[18]).value_or(absl::Now());
  row.private_address = r[19].as<std::string>();
  return row;
}

std::string DeployJobKey(const std::string& deployment_id) {
  return absl::StrCat("deploy:", deployment_id);
}

// The SQL spelling of an enum value: its name without the prefix, lower case.
std::string EnumSql(const std::string& name, size_t prefix) {
  return absl::AsciiStrToLower(name.substr(prefix));
}

}  // namespace

std::string StateName(v1::DeploymentState s) { return EnumSql(v1::DeploymentState_Name(s), 17); }
std::string StateName(v1::InstanceState s) { return EnumSql(v1::InstanceState_Name(s), 15); }
std::string StateName(v1::VolumeState s) { return EnumSql(v1::VolumeState_Name(s), 13); }

absl::StatusOr<std::string> InstallationId(pg::Tx& tx) {
  pqxx::result r = tx.Exec(kInstallation);
  if (r.empty()) return absl::FailedPreconditionError("the installation table is empty");
  return r[0][0].as<std::string>();
}

// ---- deployments

NewDeployment RollbackTo(const v1::Deployment& target, const std::string& request_id) {
  return {.id = ids::New("dep"),
          .build_id = target.build_id(),
          .request_id = request_id,
          .image_repository = target.image_repository(),
          .image_digest = target.image_digest(),
          .spec = target.spec(),
          .rollback_of = target.id()};
}

absl::StatusOr<InsertResult> InsertDeployment(pg::Tx& tx, const NewDeployment& d) {
  auto spec_json = rpc::ToJson(d.spec);
  if (!spec_json.ok()) return spec_json.status();
  const std::string& service_id = d.spec.service_id();
  pqxx::result r =
      tx.Exec(kInsertDeployment, d.id, service_id, d.spec.project_id(), d.build_id, d.request_id,
              d.image_repository, d.image_digest, *spec_json, d.rollback_of);
  InsertResult out;
  if (r.empty()) {
    pqxx::result existing = tx.Exec(kByRequest, service_id, d.request_id);
    if (existing.empty()) return absl::AbortedError("a concurrent request just changed; retry");
    out.deployment = RowToDeployment(existing[0]);
    return out;
  }
  for (const auto& row : tx.Exec(kSupersede, service_id, d.id)) {
    const std::string old = row[0].as<std::string>();
    tx.Exec(kCancelDeployJob, DeployJobKey(old));
    C2D_RETURN_IF_ERROR(AddEvent(tx, old, service_id, "", "deployment.superseded",
                                 absl::StrCat("superseded by ", d.id, " before it went live")));
  }
  v1::DeployJob payload;
  payload.set_deployment_id(d.id);
  auto payload_json = rpc::ToJson(payload);
  if (!payload_json.ok()) return payload_json.status();
  auto job = jobs::Enqueue(tx, {.queue = "deployer",
                                .kind = "deploy",
                                .payload = *payload_json,
                                .priority = 50,
                                .max_attempts = 5,
                                .unique_key = DeployJobKey(d.id)});
  if (!job.ok()) return job.status();
  C2D_RETURN_IF_ERROR(AddEvent(tx, d.id, service_id, "", "deployment.created",
                               d.rollback_of.empty()
                                   ? absl::StrCat("release of ", d.image_digest.substr(0, 19))
                                   : absl::StrCat("rollback to the release of ", d.rollback_of)));
  auto inserted = GetDeployment(tx, d.id);
  if (!inserted.ok()) return inserted.status();
  out.deployment = std::move(*inserted);
  out.created = true;
  return out;
}

absl::StatusOr<v1::Deployment> GetDeployment(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kGetDeployment, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("deployment ", id, " does not exist"));
  return RowToDeployment(r[0]);
}

absl::StatusOr<v1::Deployment> LockDeployment(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kLockDeployment, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("deployment ", id, " does not exist"));
  return RowToDeployment(r[0]);
}

absl::StatusOr<std::vector<v1::Deployment>> LiveDeployments(pg::Tx& tx) {
  std::vector<v1::Deployment> out;
  for (const auto& r : tx.Exec(kAllLive)) out.push_back(RowToDeployment(r));
  return out;
}

absl::StatusOr<std::vector<std::string>> RoutedServices(pg::Tx& tx, const std::string& project_id) {
  std::vector<std::string> out;
  for (const auto& r : tx.Exec(kRoutedServices, project_id)) out.push_back(r[0].as<std::string>());
  return out;
}

absl::StatusOr<v1::Deployment> PreviousLive(pg::Tx& tx, const std::string& service_id) {
  pqxx::result r = tx.Exec(kPreviousLive, service_id);
  if (r.empty()) {
    return absl::NotFoundError(
        absl::StrCat("service ", service_id, " has no earlier live release to roll back to"));
  }
  return RowToDeployment(r[0]);
}

absl::StatusOr<v1::Deployment> LiveDeployment(pg::Tx& tx, const std::string& service_id) {
  pqxx::result r = tx.Exec(kLive, service_id);
  if (r.empty()) {
    return absl::NotFoundError(absl::StrCat("service ", service_id, " has no live deployment"));
  }
  return RowToDeployment(r[0]);
}

absl::StatusOr<v1::ListDeploymentsResponse> ListDeployments(pg::Tx& tx,
                                                            const std::string& service_id,
                                                            int page_size,
                                                            const std::string& page_token) {
  v1::ListDeploymentsResponse out;
  out.set_next_page_token(pg::FillPage(
      tx.Exec(kListDeployments, service_id, page_token, page_size + 1), page_size,
      [&](const pqxx::row& r) { return (*out.add_deployments() = RowToDeployment(r)).id(); }));
  return out;
}

absl::StatusOr<bool> MarkDeploying(pg::Tx& tx, const std::string& id) {
  return !tx.Exec(kMarkDeploying, id).empty();
}

absl::StatusOr<bool> MarkDeploymentFailed(pg::Tx& tx, const std::string& id,
                                          const std::string& reason) {
  return !tx.Exec(kMarkFailed, id, reason).empty();
}

absl::StatusOr<bool> RetireLive(pg::Tx& tx, const v1::Deployment& d, const std::string& why) {
  const bool rollback = !d.rollback_of().empty();
  bool any = false;
  for (const auto& row :
       tx.Exec(kRetireLive, d.service_id(), d.id(), rollback ? "rolled_back" : "superseded")) {
    const std::string old = row[0].as<std::string>();
    tx.Exec(kDrainOf, old);
    C2D_RETURN_IF_ERROR(AddEvent(tx, old, d.service_id(), "",
                                 rollback ? "deployment.rolled_back" : "deployment.superseded",
                                 why));
    any = true;
  }
  return any;
}

absl::StatusOr<bool> InheritRetired(pg::Tx& tx, const v1::Deployment& d) {
  return !tx.Exec(kInheritRetired, d.service_id(), d.id()).empty();
}

absl::StatusOr<std::optional<v1::Deployment>> RetiredFor(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kRetiredFor, id);
  if (r.empty()) return std::optional<v1::Deployment>();
  return std::optional<v1::Deployment>(RowToDeployment(r[0]));
}

absl::StatusOr<bool> SwitchLive(pg::Tx& tx, const v1::Deployment& d) {
  auto current = LockDeployment(tx, d.id());
  if (!current.ok()) return current.status();
  if (current->state() != v1::DEPLOYMENT_STATE_DEPLOYING) return false;
  C2D_RETURN_IF_ERROR(RetireLive(tx, d, absl::StrCat("replaced by ", d.id())).status());
  if (tx.Exec(kMakeLive, d.id()).empty()) return false;
  C2D_RETURN_IF_ERROR(AddEvent(tx, d.id(), d.service_id(), "", "deployment.live",
                               "every instance is healthy; the ingress now routes to them"));
  return true;
}

absl::StatusOr<std::vector<std::string>> StopDeployments(pg::Tx& tx, const std::string& service_id,
                                                         const std::string& reason) {
  std::vector<std::string> changed;
  for (const auto& row : tx.Exec(kStopLive, service_id)) {
    changed.push_back(row[0].as<std::string>());
    tx.Exec(kDrainOf, changed.back());
    C2D_RETURN_IF_ERROR(AddEvent(tx, changed.back(), service_id, "", "deployment.stopped", reason));
  }
  for (const auto& row : tx.Exec(kSupersedeAll, service_id)) {
    changed.push_back(row[0].as<std::string>());
    tx.Exec(kCancelDeployJob, DeployJobKey(changed.back()));
    tx.Exec(kDrainOf, changed.back());
    C2D_RETURN_IF_ERROR(
        AddEvent(tx, changed.back(), service_id, "", "deployment.superseded", reason));
  }
  return changed;
}

// ---- instances

absl::Status InsertInstance(pg::Tx& tx, const std::string& id, const v1::Deployment& d) {
  tx.Exec(kInsertInstance, id, d.id(), d.service_id(), d.spec().run().port());
  return absl::OkStatus();
}

absl::Status SetInstanceRef(pg::Tx& tx, const std::string& id, const std::string& ref,
                            const std::string& host, int port, const std::string& private_address) {
  tx.Exec(kSetRef, id, ref, host, port, private_address);
  return absl::OkStatus();
}

absl::Status SetInstanceState(pg::Tx& tx, const std::string& id, v1::InstanceState state) {
  tx.Exec(kSetState, id, StateName(state));
  return absl::OkStatus();
}

absl::Status RecordHealth(pg::Tx& tx, const std::string& id, const HealthUpdate& h) {
  tx.Exec(kHealth, id, h.ok, h.detail.substr(0, 1000), h.consecutive_passes,
          h.consecutive_failures);
  return absl::OkStatus();
}

absl::Status RecordHealths(pg::Tx& tx, const std::vector<std::pair<std::string, HealthUpdate>>& h) {
  if (h.empty()) return absl::OkStatus();
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [id, u] : h) {
    rows.push_back({{"id", id},
                    {"ok", u.ok},
                    {"detail", u.detail.substr(0, 1000)},
                    {"passes", u.consecutive_passes},
                    {"failures", u.consecutive_failures}});
  }
  // Invalid UTF-8 in a detail (an app's answer) becomes U+FFFD, not an error.
  tx.Exec(kHealths, rows.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return absl::OkStatus();
}

absl::Status RecordRestart(pg::Tx& tx, const std::string& id, absl::Time next, bool crash_loop) {
  tx.Exec(kRestart, id, absl::ToUnixMicros(next), crash_loop);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<InstanceRow>> InstancesOfDeployment(pg::Tx& tx,
                                                               const std::string& deployment_id) {
  std::vector<InstanceRow> out;
  for (const auto& r : tx.Exec(kInstancesOf, deployment_id)) out.push_back(RowToInstance(r));
  return out;
}

absl::StatusOr<std::vector<std::string>> ServicesWithStaleCustomRoutes(pg::Tx& tx, int limit) {
  std::vector<std::string> out;
  for (const pqxx::row& r : tx.Exec(kStaleCustomRoutes, limit)) {
    out.push_back(r[0].as<std::string>());
  }
  return out;
}

absl::StatusOr<std::vector<InstanceRow>> ActiveInstances(pg::Tx& tx,
                                                         const std::string& service_id) {
  std::vector<InstanceRow> out;
  for (const auto& r : tx.Exec(kActive, service_id)) out.push_back(RowToInstance(r));
  return out;
}

absl::StatusOr<std::map<std::string, std::vector<std::string>>> ServedNames(pg::Tx& tx) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& r : tx.Exec(kServedNames)) {
    out[r[0].as<std::string>()].push_back(r[1].as<std::string>());
  }
  return out;
}

absl::StatusOr<InstanceRow> GetInstance(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kGetInstance, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("instance ", id, " does not exist"));
  return RowToInstance(r[0]);
}

absl::StatusOr<v1::ListInstancesResponse> ListInstances(pg::Tx& tx,
                                                        const v1::ListInstancesRequest& request,
                                                        int page_size) {
  v1::ListInstancesResponse out;
  out.set_next_page_token(pg::FillPage(
      tx.Exec(kListInstances, request.service_id(), request.deployment_id(),
              request.include_stopped(), request.page().page_token(), page_size + 1),
      page_size,
      [&](const pqxx::row& r) { return (*out.add_instances() = RowToInstance(r).instance).id(); }));
  return out;
}

absl::StatusOr<int> RestartsSince(pg::Tx& tx, const std::string& instance_id, absl::Time since) {
  return tx.Exec(kRestartsSince, instance_id, absl::ToUnixMicros(since))[0][0].as<int>();
}

// ---- events

absl::Status AddEvent(pg::Tx& tx, const std::string& deployment_id, const std::string& service_id,
                      const std::string& instance_id, const std::string& kind,
                      const std::string& message) {
  tx.Exec(kAddEvent, ids::New("evt"), deployment_id, service_id, instance_id, kind, message);
  tx.Exec(rows::kNotify, kEventsChannel, service_id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::DeploymentEvent>> ReadEvents(pg::Tx& tx,
                                                            const std::string& deployment_id,
                                                            const std::string& service_id,
                                                            int64_t after_seq, int limit) {
  std::vector<v1::DeploymentEvent> out;
  for (const auto& r : tx.Exec(kReadEvents, deployment_id, service_id, after_seq, limit)) {
    v1::DeploymentEvent& e = out.emplace_back();
    e.set_id(r[0].as<std::string>());
    e.set_seq(r[1].as<int64_t>());
    e.set_deployment_id(r[2].as<std::string>());
    e.set_service_id(r[3].as<std::string>());
    e.set_instance_id(r[4].as<std::string>());
    e.set_kind(r[5].as<std::string>());
    e.set_message(r[6].as<std::string>());
    pg::SetTime(r[7], e.mutable_time());
  }
  return out;
}

}  // namespace c2d::deployer
