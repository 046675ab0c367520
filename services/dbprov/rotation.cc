#include "services/dbprov/rotation.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/rpc/proto_json.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/dbprov/database_service.h"

namespace c2d::dbprov {
namespace {

constexpr absl::Duration kPoll = absl::Seconds(1);
constexpr auto kCallTimeout = std::chrono::seconds(30);

std::string Other(const std::string& role) { return role == "a" ? "b" : "a"; }

void Deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
}

bool Ended(v1::DeploymentState s) {
  return s == v1::DEPLOYMENT_STATE_LIVE || s == v1::DEPLOYMENT_STATE_SUPERSEDED ||
         s == v1::DEPLOYMENT_STATE_FAILED || s == v1::DEPLOYMENT_STATE_ROLLED_BACK ||
         s == v1::DEPLOYMENT_STATE_STOPPED;
}

}  // namespace

std::string RotateJobKey(const std::string& id) { return absl::StrCat("rotate_db:", id); }

absl::StatusOr<bool> StartRotation(pg::Tx& tx, const std::string& database_id) {
  C2D_ASSIGN_OR_RETURN(bool started, BeginRotation(tx, database_id));
  if (!started) return false;
  v1::RotateDbJob job;
  job.set_database_id(database_id);
  // Redeploys wait for health gates: a few tries, each within its deadline.
  C2D_RETURN_IF_ERROR(EnqueueJob(tx, "rotate_db", job, RotateJobKey(database_id), 3));
  return true;
}

grpc::Status DatabaseServiceImpl::RotateCredentials(grpc::ServerContext*,
                                                    const v1::RotateCredentialsRequest* request,
                                                    v1::Database* response) {
  const std::string& id = request->database_id();
  if (!ids::Valid(id, "db")) {
    return rpc::ToGrpc(rpc::InvalidField("database_id", "is not a database id"));
  }
  auto started = pool_.Transact("rotate", [&](pg::Tx& tx) -> absl::StatusOr<v1::Database> {
    C2D_ASSIGN_OR_RETURN(DatabaseRow row, dbprov::GetDatabase(tx, id));
    if (row.db.state() == v1::DATABASE_STATE_DELETED) {
      return absl::NotFoundError(absl::StrCat("database ", id, " does not exist"));
    }
    C2D_ASSIGN_OR_RETURN(bool ok, StartRotation(tx, id));
    if (!ok) {
      const std::string state = absl::AsciiStrToLower(
          v1::DatabaseState_Name(row.db.state()).substr(sizeof("DATABASE_STATE_") - 1));
      return absl::FailedPreconditionError(absl::StrCat("database ", row.db.name(), " is ", state,
                                                        "; only an available database rotates"));
    }
    C2D_ASSIGN_OR_RETURN(DatabaseRow now, dbprov::GetDatabase(tx, id));
    return now.db;
  });
  if (!started.ok()) return rpc::ToGrpc(started.status());
  *response = std::move(*started);
  return grpc::Status::OK;
}

Rotations::Rotations(pg::Pool& pool, const Config& config, Servers& servers,
                     const std::shared_ptr<grpc::Channel>& deployer)
    : pool_(pool),
      config_(config),
      servers_(servers),
      deployer_(deployer ? v1::DeployerService::NewStub(deployer) : nullptr) {}

void Rotations::RegisterJobs(jobs::Worker& worker) {
  worker.Register("rotate_db", [this](jobs::JobContext& ctx) { return Rotate(ctx); });
}

absl::StatusOr<DatabaseRow> Rotations::Load(const std::string& id) {
  auto row = pool_.Read("get database", [&](pg::Tx& tx) { return GetDatabase(tx, id); });
  if (absl::IsNotFound(row.status())) return jobs::Permanent(row.status());
  return row;
}

absl::Status Rotations::Converge(const std::string& id) {
  C2D_ASSIGN_OR_RETURN(DatabaseRow row, Load(id));
  return Converge(row);
}

absl::Status Rotations::Converge(const DatabaseRow& row) {
  C2D_ASSIGN_OR_RETURN(std::string admin, OpenPassword(*config_.master_keys, row, "admin"));
  C2D_ASSIGN_OR_RETURN(cloud::Instance server, servers_.EnsureServer(row, admin));
  return servers_.EnsureRoles(server.address, row, admin);
}

absl::Status Rotations::Prepare(const DatabaseRow& row, const std::string& to) {
  const std::string& id = row.db.id();
  C2D_ASSIGN_OR_RETURN(crypto::Sealed sealed,
                       config_.master_keys->Seal(NewPassword(), PasswordAad(id, to)));
  C2D_RETURN_IF_ERROR(
      pool_.Transact("new password", [&](pg::Tx& tx) { return SetPassword(tx, id, to, sealed); }));
  // Both roles may log in while the database rotates.
  C2D_RETURN_IF_ERROR(Converge(id));
  return pool_.Transact("switch role", [&](pg::Tx& tx) { return SwitchRole(tx, id, to); }).status();
}

absl::StatusOr<std::vector<std::string>> Rotations::Redeploy(const DatabaseRow& row,
                                                             const jobs::JobContext& ctx) {
  std::vector<std::string> deployments;
  std::string after;
  do {
    C2D_ASSIGN_OR_RETURN(v1::ListLinksResponse page, pool_.Read("links", [&](pg::Tx& tx) {
      return ListLinks(tx, row.db.id(), "", after, 200);
    }));
    for (const v1::DatabaseLink& link : page.links()) {
      if (deployer_ == nullptr) {
        return absl::FailedPreconditionError(
            "dbprov has no deployer (C2D_DEPLOYER_ADDR) to redeploy the linked services with");
      }
      grpc::ClientContext call;
      Deadline(call);
      v1::RedeployRequest req;
      req.set_service_id(link.service_id());
      req.set_request_id(absl::StrCat("rotate_db-", ctx.job().id, "-", row.db.id()));
      v1::Deployment d;
      absl::Status s = rpc::FromGrpc(deployer_->Redeploy(&call, req, &d));
      if (absl::IsFailedPrecondition(s)) continue;  // nothing live: its first deploy resolves
      C2D_RETURN_IF_ERROR(s);
      deployments.push_back(d.id());
    }
    after = page.next_page_token();
  } while (!after.empty());
  return deployments;
}

absl::Status Rotations::WaitLive(const std::vector<std::string>& deployments,
                                 const jobs::JobContext& ctx) {
  const absl::Time deadline = absl::Now() + absl::FromChrono(config_.rotation_timeout);
  for (const std::string& id : deployments) {
    v1::Deployment d;
    while (true) {
      if (ctx.cancelled()) return absl::CancelledError("job cancelled");
      grpc::ClientContext call;
      Deadline(call);
      v1::GetDeploymentRequest req;
      req.set_id(id);
      C2D_RETURN_IF_ERROR(rpc::FromGrpc(deployer_->GetDeployment(&call, req, &d)));
      if (Ended(d.state())) break;
      if (absl::Now() > deadline) {
        return absl::FailedPreconditionError(
            absl::StrCat("release ", id, " of service ", d.service_id(), " did not go live within ",
                         absl::FormatDuration(absl::FromChrono(config_.rotation_timeout))));
      }
      absl::SleepFor(kPoll);
    }
    if (d.state() != v1::DEPLOYMENT_STATE_LIVE && d.state() != v1::DEPLOYMENT_STATE_SUPERSEDED) {
      return absl::FailedPreconditionError(
          absl::StrCat("release ", id, " of service ", d.service_id(), " did not go live (",
                       v1::DeploymentState_Name(d.state()), "): ", d.failure_reason()));
    }
    C2D_RETURN_IF_ERROR(WaitDrained(d, deadline, ctx));
  }
  return absl::OkStatus();
}

absl::Status Rotations::WaitDrained(const v1::Deployment& d, absl::Time deadline,
                                    const jobs::JobContext& ctx) {
  // The old release's instances still use the old role: the ingress may
  // still send them requests (it follows the switch within moments) and
  // they finish what they have. Retiring waits until they are gone.
  while (true) {
    if (ctx.cancelled()) return absl::CancelledError("job cancelled");
    grpc::ClientContext call;
    Deadline(call);
    v1::ListInstancesRequest req;
    req.set_service_id(d.service_id());
    req.mutable_page()->set_page_size(200);
    v1::ListInstancesResponse resp;
    C2D_RETURN_IF_ERROR(rpc::FromGrpc(deployer_->ListInstances(&call, req, &resp)));
    int old = 0;
    for (const v1::Instance& i : resp.instances()) {
      const bool serving =
          i.state() == v1::INSTANCE_STATE_STARTING || i.state() == v1::INSTANCE_STATE_HEALTHY ||
          i.state() == v1::INSTANCE_STATE_UNHEALTHY || i.state() == v1::INSTANCE_STATE_DRAINING;
      // A superseded release's successor replaced the old instances too:
      // only draining ones still matter then.
      const bool ours = d.state() == v1::DEPLOYMENT_STATE_LIVE
                            ? i.deployment_id() == d.id()
                            : i.state() != v1::INSTANCE_STATE_DRAINING;
      if (serving && !ours) ++old;
    }
    if (old == 0) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::FailedPreconditionError(
          absl::StrCat("service ", d.service_id(), " still has ", old,
                       " instances of its earlier release after ",
                       absl::FormatDuration(absl::FromChrono(config_.rotation_timeout))));
    }
    absl::SleepFor(kPoll);
  }
}

absl::Status Rotations::Retire(const DatabaseRow& row, const std::string& from) {
  const std::string& id = row.db.id();
  // A password nobody ever learns, so the role is useless even if enabled.
  C2D_ASSIGN_OR_RETURN(crypto::Sealed sealed,
                       config_.master_keys->Seal(NewPassword(), PasswordAad(id, from)));
  C2D_RETURN_IF_ERROR(
      pool_.Transact("retire role", [&](pg::Tx& tx) { return SetPassword(tx, id, from, sealed); }));
  // The server first, as the row will be: once the database shows
  // available, the old role no longer logs in (a crash before the end
  // retires it again).
  C2D_ASSIGN_OR_RETURN(DatabaseRow done, Load(id));
  done.db.set_state(v1::DATABASE_STATE_AVAILABLE);
  done.db.clear_retiring_role();
  C2D_RETURN_IF_ERROR(Converge(done));
  return pool_.Transact(
      "rotated", [&](pg::Tx& tx) { return EndRotation(tx, id, /*finished=*/true, "").status(); });
}

absl::Status Rotations::Rotate(jobs::JobContext& ctx) {
  v1::RotateDbJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.database_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("rotate_db payload names no database"));
  }
  const std::string& id = payload.database_id();
  C2D_ASSIGN_OR_RETURN(DatabaseRow row, Load(id));
  // Ended already (a run after a crash): the server as the row says.
  if (row.db.state() == v1::DATABASE_STATE_AVAILABLE) return Converge(id);
  if (row.db.state() != v1::DATABASE_STATE_ROTATING) return absl::OkStatus();
  const std::string from = row.db.retiring_role();
  const std::string to = Other(from);
  // A rotation that stopped earlier switched already: it only retires.
  if (row.db.active_role() == from) C2D_RETURN_IF_ERROR(Prepare(row, to));
  auto deployments = Redeploy(row, ctx);
  absl::Status live = deployments.ok() ? WaitLive(*deployments, ctx) : deployments.status();
  if (absl::IsFailedPrecondition(live) ||
      (!live.ok() && ctx.job().attempts >= ctx.job().max_attempts)) {
    const std::string reason = absl::StrCat(
        "credential rotation stopped: ", live.message(), "; role ", RoleBase(row.db.name()), "_",
        from, " stays enabled for the release still on it: rotate again once it deploys");
    C2D_RETURN_IF_ERROR(pool_.Transact("rotation stopped", [&](pg::Tx& tx) {
      return EndRotation(tx, id, /*finished=*/false, reason).status();
    }));
    log::Warn("credential rotation stopped", {{"database_id", id}, {"error", live.ToString()}});
    return Converge(id);
  }
  C2D_RETURN_IF_ERROR(live);
  C2D_RETURN_IF_ERROR(Retire(row, from));
  log::Info(
      "credentials rotated",
      {{"database_id", id}, {"active_role", to}, {"services_redeployed", deployments->size()}});
  return absl::OkStatus();
}

int Rotations::StartDue() {
  auto started = pool_.Transact("start rotations", [&](pg::Tx& tx) -> absl::StatusOr<int> {
    C2D_ASSIGN_OR_RETURN(std::vector<std::string> due, DueRotations(tx, 20));
    int n = 0;
    for (const std::string& id : due) {
      C2D_ASSIGN_OR_RETURN(bool ok, StartRotation(tx, id));
      n += ok ? 1 : 0;
    }
    return n;
  });
  if (!started.ok()) {
    log::Warn("start rotations", {{"error", started.status().ToString()}});
    return 0;
  }
  return *started;
}

}  // namespace c2d::dbprov
