#include "services/deployer/deployer_service.h"

#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/jobs/queue.h"
#include "libs/pg/errors.h"
#include "libs/rpc/proto_json.h"
#include "libs/rpc/server.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/deployer/store.h"

namespace c2d::deployer {
namespace {

using rpc::InvalidField;

bool IsFinal(v1::DeploymentState s) {
  return s == v1::DEPLOYMENT_STATE_FAILED || s == v1::DEPLOYMENT_STATE_SUPERSEDED ||
         s == v1::DEPLOYMENT_STATE_ROLLED_BACK || s == v1::DEPLOYMENT_STATE_STOPPED;
}

bool InRange(int v, int lo, int hi) { return v >= lo && v <= hi; }

}  // namespace

absl::Status ValidateDeploy(const v1::DeployRequest& r, const std::string& registry_host) {
  static const std::regex kDigest("^sha256:[0-9a-f]{64}$");
  static const std::regex kRepoPath("^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$");
  if (!ids::Valid(r.service_id(), "svc")) return InvalidField("service_id", "is not a service id");
  if (r.spec().service_id() != r.service_id()) {
    return InvalidField("spec.service_id", "must equal service_id");
  }
  if (!ids::Valid(r.build_id(), "bld")) return InvalidField("build_id", "is not a build id");
  const std::string prefix = registry_host + "/";
  if (!absl::StartsWith(r.image_repository(), prefix) ||
      !std::regex_match(
          r.image_repository().substr(std::min(prefix.size(), r.image_repository().size())),
          kRepoPath)) {
    return InvalidField("image_repository",
                        absl::StrCat("must be a repository of c2d's registry, ", prefix, "<path>"));
  }
  if (!std::regex_match(r.image_digest(), kDigest)) {
    return InvalidField("image_digest", "must be sha256:<64 lower-case hex digits>");
  }
  if (r.request_id().size() > 255) {
    return InvalidField("request_id", "must be at most 255 characters");
  }
  return rpc::ValidateServiceSpec(r.spec());
}

DeployerServiceImpl::DeployerServiceImpl(Runtime& runtime)
    : runtime_(runtime),
      config_(runtime.config()),
      registry_(runtime.config().registry),
      events_(runtime.pool().options().connect, kEventsChannel),
      logs_(runtime.pool().options().connect, kRuntimeLogChannel) {}

absl::Status DeployerServiceImpl::CheckImage(const std::string& repository,
                                             const std::string& digest) {
  const std::string path = repository.substr(repository.find('/') + 1);
  auto resolved = registry_.ResolveDigest(path, digest);
  if (absl::IsNotFound(resolved.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("image ", repository, "@", digest, " is not in the registry"));
  }
  if (!resolved.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach the registry: ", resolved.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Deployment> DeployerServiceImpl::Insert(const NewDeployment& d) {
  auto result = runtime_.pool().Transact("deploy", [&](pg::Tx& tx) -> absl::StatusOr<InsertResult> {
    for (const v1::VolumeMount& m : d.spec.volumes()) {
      auto v = deployer::GetVolume(tx, m.volume_id());
      if (!v.ok()) return v.status();
      if (v->service_id() != d.spec.service_id()) {
        return absl::NotFoundError(absl::StrCat(
            "volume ", m.volume_id(), " does not belong to service ", d.spec.service_id()));
      }
      if (v->state() == v1::VOLUME_STATE_DELETING || v->state() == v1::VOLUME_STATE_DELETED) {
        return absl::FailedPreconditionError(
            absl::StrCat("volume ", v->name(), " is being deleted"));
      }
    }
    return InsertDeployment(tx, d);
  });
  if (pg::IsForeignKeyViolation(result.status())) {
    return absl::NotFoundError(absl::StrCat("service ", d.spec.service_id(), ", project ",
                                            d.spec.project_id(), " or build ", d.build_id,
                                            " does not exist"));
  }
  if (!result.ok()) return result.status();
  log::Info(result->created ? "deployment queued" : "deployment already exists",
            {{"deployment_id", result->deployment.id()}, {"service_id", d.spec.service_id()}});
  return std::move(result->deployment);
}

grpc::Status DeployerServiceImpl::Deploy(grpc::ServerContext* context,
                                         const v1::DeployRequest* request,
                                         v1::Deployment* response) {
  log::Scope scope(nlohmann::json{{"request_id", rpc::RequestId(*context)}});
  if (auto s = ValidateDeploy(*request, config_.RegistryHost()); !s.ok()) return rpc::ToGrpc(s);
  if (auto s = CheckImage(request->image_repository(), request->image_digest()); !s.ok()) {
    return rpc::ToGrpc(s);
  }
  NewDeployment d{.id = ids::New("dep"),
                  .build_id = request->build_id(),
                  .request_id = request->request_id(),
                  .image_repository = request->image_repository(),
                  .image_digest = request->image_digest(),
                  .spec = request->spec(),
                  .rollback_of = ""};
  auto out = Insert(d);
  if (!out.ok()) return rpc::ToGrpc(out.status());
  *response = std::move(*out);
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::GetDeployment(grpc::ServerContext*,
                                                const v1::GetDeploymentRequest* request,
                                                v1::Deployment* response) {
  if (!ids::Valid(request->id(), "dep")) {
    return rpc::ToGrpc(InvalidField("id", "is not a deployment id"));
  }
  auto d = runtime_.pool().Transact(
      "get deployment", [&](pg::Tx& tx) { return deployer::GetDeployment(tx, request->id()); });
  if (!d.ok()) return rpc::ToGrpc(d.status());
  *response = std::move(*d);
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::ListDeployments(grpc::ServerContext*,
                                                  const v1::ListDeploymentsRequest* request,
                                                  v1::ListDeploymentsResponse* response) {
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(InvalidField("service_id", "is not a service id"));
  }
  auto size = rpc::PageSize(request->page());
  if (!size.ok()) return rpc::ToGrpc(size.status());
  const std::string& token = request->page().page_token();
  if (!token.empty() && !ids::Valid(token, "dep")) {
    return rpc::ToGrpc(InvalidField("page.page_token", "is not a token from a previous page"));
  }
  auto list = runtime_.pool().Transact("list deployments", [&](pg::Tx& tx) {
    return deployer::ListDeployments(tx, request->service_id(), *size, token);
  });
  if (!list.ok()) return rpc::ToGrpc(list.status());
  *response = std::move(*list);
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::Rollback(grpc::ServerContext* context,
                                           const v1::RollbackRequest* request,
                                           v1::Deployment* response) {
  log::Scope scope(nlohmann::json{{"request_id", rpc::RequestId(*context)}});
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(InvalidField("service_id", "is not a service id"));
  }
  const bool pick = request->to_deployment_id().empty();
  if (!pick && !ids::Valid(request->to_deployment_id(), "dep")) {
    return rpc::ToGrpc(InvalidField("to_deployment_id", "is not a deployment id"));
  }
  if (request->request_id().size() > 255) {
    return rpc::ToGrpc(InvalidField("request_id", "must be at most 255 characters"));
  }
  auto target = runtime_.pool().Transact("get deployment", [&](pg::Tx& tx) {
    return pick ? PreviousLive(tx, request->service_id())
                : deployer::GetDeployment(tx, request->to_deployment_id());
  });
  if (pick && absl::IsNotFound(target.status())) {
    return rpc::ToGrpc(absl::FailedPreconditionError(target.status().message()));
  }
  if (!target.ok()) return rpc::ToGrpc(target.status());
  if (target->service_id() != request->service_id()) {
    return rpc::ToGrpc(absl::NotFoundError(absl::StrCat(
        "deployment ", target->id(), " is not one of service ", request->service_id())));
  }
  if (!target->has_live_at()) {
    return rpc::ToGrpc(absl::FailedPreconditionError(absl::StrCat(
        "deployment ", target->id(), " never went live, so there is nothing to roll back to")));
  }
  if (target->state() == v1::DEPLOYMENT_STATE_LIVE) {
    return rpc::ToGrpc(absl::FailedPreconditionError(
        absl::StrCat("deployment ", target->id(), " is the live one already")));
  }
  if (auto s = CheckImage(target->image_repository(), target->image_digest()); !s.ok()) {
    return rpc::ToGrpc(s);
  }
  auto out = Insert(RollbackTo(*target, request->request_id()));
  if (!out.ok()) return rpc::ToGrpc(out.status());
  *response = std::move(*out);
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::Redeploy(grpc::ServerContext* context,
                                           const v1::RedeployRequest* request,
                                           v1::Deployment* response) {
  log::Scope scope(nlohmann::json{{"request_id", rpc::RequestId(*context)}});
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(InvalidField("service_id", "is not a service id"));
  }
  if (request->request_id().size() > 255) {
    return rpc::ToGrpc(InvalidField("request_id", "must be at most 255 characters"));
  }
  auto live = runtime_.pool().Transact(
      "live deployment", [&](pg::Tx& tx) { return LiveDeployment(tx, request->service_id()); });
  if (absl::IsNotFound(live.status())) {
    return rpc::ToGrpc(absl::FailedPreconditionError(
        absl::StrCat("service ", request->service_id(), " has no live release to redeploy")));
  }
  if (!live.ok()) return rpc::ToGrpc(live.status());
  v1::DeployRequest deploy;
  deploy.set_service_id(request->service_id());
  deploy.set_build_id(live->build_id());
  deploy.set_image_repository(live->image_repository());
  deploy.set_image_digest(live->image_digest());
  *deploy.mutable_spec() = request->has_spec() ? request->spec() : live->spec();
  deploy.set_request_id(request->request_id());
  return Deploy(context, &deploy, response);
}

grpc::Status DeployerServiceImpl::SyncRoutes(grpc::ServerContext* context,
                                             const v1::SyncRoutesRequest* request,
                                             v1::SyncRoutesResponse* response) {
  log::Scope scope(nlohmann::json{{"request_id", rpc::RequestId(*context)}});
  if (!ids::Valid(request->project_id(), "prj")) {
    return rpc::ToGrpc(InvalidField("project_id", "is not a project id"));
  }
  auto services = runtime_.pool().Transact(
      "routed services", [&](pg::Tx& tx) { return RoutedServices(tx, request->project_id()); });
  if (!services.ok()) return rpc::ToGrpc(services.status());
  for (const std::string& service : *services) {
    if (absl::Status s = runtime_.SyncIngress(service); !s.ok()) return rpc::ToGrpc(s);
  }
  response->set_services(static_cast<int32_t>(services->size()));
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::StopService(grpc::ServerContext* context,
                                              const v1::StopServiceRequest* request,
                                              v1::StopServiceResponse*) {
  log::Scope scope(nlohmann::json{{"request_id", rpc::RequestId(*context)}});
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(InvalidField("service_id", "is not a service id"));
  }
  if (request->reason().size() > 1000) {
    return rpc::ToGrpc(InvalidField("reason", "must be at most 1000 characters"));
  }
  v1::StopJob payload;
  payload.set_service_id(request->service_id());
  payload.set_delete_volumes(request->delete_volumes());
  payload.set_reason(request->reason());
  auto json = rpc::ToJson(payload);
  if (!json.ok()) return rpc::ToGrpc(json.status());
  auto s = runtime_.pool().Transact("stop service", [&](pg::Tx& tx) -> absl::Status {
    return jobs::Enqueue(tx, {.queue = "deployer",
                              .kind = "stop",
                              .payload = *json,
                              .priority = 40,
                              .max_attempts = 10,
                              .unique_key = absl::StrCat("stop:", request->service_id())})
        .status();
  });
  return rpc::ToGrpc(s);
}

grpc::Status DeployerServiceImpl::ListInstances(grpc::ServerContext*,
                                                const v1::ListInstancesRequest* request,
                                                v1::ListInstancesResponse* response) {
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(InvalidField("service_id", "is not a service id"));
  }
  if (!request->deployment_id().empty() && !ids::Valid(request->deployment_id(), "dep")) {
    return rpc::ToGrpc(InvalidField("deployment_id", "is not a deployment id"));
  }
  auto size = rpc::PageSize(request->page());
  if (!size.ok()) return rpc::ToGrpc(size.status());
  const std::string& token = request->page().page_token();
  if (!token.empty() && !ids::Valid(token, "ins")) {
    return rpc::ToGrpc(InvalidField("page.page_token", "is not a token from a previous page"));
  }
  auto list = runtime_.pool().Transact(
      "list instances", [&](pg::Tx& tx) { return deployer::ListInstances(tx, *request, *size); });
  if (!list.ok()) return rpc::ToGrpc(list.status());
  *response = std::move(*list);
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::StreamRuntimeLogs(grpc::ServerContext* context,
                                                    const v1::StreamRuntimeLogsRequest* request,
                                                    grpc::ServerWriter<v1::LogLine>* writer) {
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(InvalidField("service_id", "is not a service id"));
  }
  if (!request->instance_id().empty() && !ids::Valid(request->instance_id(), "ins")) {
    return rpc::ToGrpc(InvalidField("instance_id", "is not an instance id"));
  }
  if (request->after_seq() < 0)
    return rpc::ToGrpc(InvalidField("after_seq", "must not be negative"));
  if (!InRange(request->tail_lines(), 0, 10000)) {
    return rpc::ToGrpc(InvalidField("tail_lines", "must be 0-10000"));
  }
  const std::string& service = request->service_id();
  const std::string& instance = request->instance_id();
  int64_t after = request->after_seq();
  if (after == 0) {
    auto start = runtime_.pool().Transact("log tail", [&](pg::Tx& tx) {
      return TailStart(tx, service, instance,
                       request->tail_lines() > 0 ? request->tail_lines() : 100);
    });
    if (!start.ok()) return rpc::ToGrpc(start.status());
    after = *start;
  }
  while (!context->IsCancelled()) {
    const uint64_t seen = logs_.Version(service);
    bool more = true;
    while (more) {
      auto lines = runtime_.pool().Transact("read runtime log", [&](pg::Tx& tx) {
        return ReadRuntimeLogs(tx, service, instance, after, 500);
      });
      if (!lines.ok()) return rpc::ToGrpc(lines.status());
      for (const v1::LogLine& line : *lines) {
        if (!writer->Write(line)) return grpc::Status::OK;  // the client left
        after = line.seq();
      }
      more = lines->size() == 500;
    }
    if (!request->follow()) return grpc::Status::OK;
    // Every new line notifies (and a reconnect counts as a change), so an
    // idle stream reads nothing until one comes; the wait wakes each second
    // only to notice a cancelled call.
    while (logs_.Version(service) == seen && !context->IsCancelled()) {
      logs_.WaitForChange(service, seen, absl::Seconds(1));
    }
  }
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::StreamDeploymentEvents(
    grpc::ServerContext* context, const v1::StreamDeploymentEventsRequest* request,
    grpc::ServerWriter<v1::DeploymentEvent>* writer) {
  const bool by_deployment = !request->deployment_id().empty();
  if (by_deployment == !request->service_id().empty()) {
    return rpc::ToGrpc(
        InvalidField("deployment_id", "exactly one of deployment_id and service_id is needed"));
  }
  if (by_deployment && !ids::Valid(request->deployment_id(), "dep")) {
    return rpc::ToGrpc(InvalidField("deployment_id", "is not a deployment id"));
  }
  if (!by_deployment && !ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(InvalidField("service_id", "is not a service id"));
  }
  if (request->after_seq() < 0)
    return rpc::ToGrpc(InvalidField("after_seq", "must not be negative"));
  std::string service = request->service_id();
  if (by_deployment) {
    auto d = runtime_.pool().Transact("get deployment", [&](pg::Tx& tx) {
      return deployer::GetDeployment(tx, request->deployment_id());
    });
    if (!d.ok()) return rpc::ToGrpc(d.status());
    service = d->service_id();
  }
  int64_t after = request->after_seq();
  while (!context->IsCancelled()) {
    const uint64_t seen = events_.Version(service);
    // The state before the events: once final, no deployment event follows.
    bool final = false;
    if (by_deployment) {
      auto d = runtime_.pool().Transact("get deployment", [&](pg::Tx& tx) {
        return deployer::GetDeployment(tx, request->deployment_id());
      });
      if (!d.ok()) return rpc::ToGrpc(d.status());
      final = IsFinal(d->state());
    }
    bool more = true;
    while (more) {
      auto events = runtime_.pool().Transact("read events", [&](pg::Tx& tx) {
        return ReadEvents(tx, request->deployment_id(), request->service_id(), after, 500);
      });
      if (!events.ok()) return rpc::ToGrpc(events.status());
      for (const v1::DeploymentEvent& e : *events) {
        if (!writer->Write(e)) return grpc::Status::OK;
        after = e.seq();
      }
      more = events->size() == 500;
    }
    if (!request->follow() || final) return grpc::Status::OK;
    events_.WaitForChange(service, seen, absl::Seconds(1));
  }
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::CreateVolume(grpc::ServerContext*,
                                               const v1::CreateVolumeRequest* request,
                                               v1::Volume* response) {
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(InvalidField("service_id", "is not a service id"));
  }
  if (!ids::Valid(request->project_id(), "prj")) {
    return rpc::ToGrpc(InvalidField("project_id", "is not a project id"));
  }
  if (!rpc::ValidName(request->name())) return rpc::ToGrpc(InvalidField("name", rpc::kNameRule));
  if (!InRange(request->size_gb(), 1, 1024))
    return rpc::ToGrpc(InvalidField("size_gb", "must be 1-1024"));
  if (!rpc::ValidMountPath(request->mount_path())) {
    return rpc::ToGrpc(InvalidField("mount_path", "must be absolute, not \"/\", without \"..\""));
  }
  auto v = runtime_.pool().Transact(
      "create volume", [&](pg::Tx& tx) { return InsertVolume(tx, ids::New("vol"), *request); });
  if (absl::IsAlreadyExists(v.status())) {
    return rpc::ToGrpc(absl::AlreadyExistsError(
        absl::StrCat("service ", request->service_id(), " already has a volume named ",
                     request->name(), " or one mounted at ", request->mount_path())));
  }
  if (absl::IsFailedPrecondition(v.status())) {
    return rpc::ToGrpc(
        absl::NotFoundError(absl::StrCat("service ", request->service_id(), " or project ",
                                         request->project_id(), " does not exist")));
  }
  if (!v.ok()) return rpc::ToGrpc(v.status());
  *response = std::move(*v);
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::ListVolumes(grpc::ServerContext*,
                                              const v1::ListVolumesRequest* request,
                                              v1::ListVolumesResponse* response) {
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(InvalidField("service_id", "is not a service id"));
  }
  auto size = rpc::PageSize(request->page());
  if (!size.ok()) return rpc::ToGrpc(size.status());
  const std::string& token = request->page().page_token();
  if (!token.empty() && !ids::Valid(token, "vol")) {
    return rpc::ToGrpc(InvalidField("page.page_token", "is not a token from a previous page"));
  }
  auto list = runtime_.pool().Transact("list volumes", [&](pg::Tx& tx) {
    return deployer::ListVolumes(tx, request->service_id(), *size, token);
  });
  if (!list.ok()) return rpc::ToGrpc(list.status());
  *response = std::move(*list);
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::GetVolume(grpc::ServerContext*,
                                            const v1::GetVolumeRequest* request,
                                            v1::Volume* response) {
  if (!ids::Valid(request->id(), "vol")) {
    return rpc::ToGrpc(InvalidField("id", "is not a volume id"));
  }
  auto v = runtime_.pool().Transact(
      "get volume", [&](pg::Tx& tx) { return deployer::GetVolume(tx, request->id()); });
  if (!v.ok()) return rpc::ToGrpc(v.status());
  *response = std::move(*v);
  return grpc::Status::OK;
}

grpc::Status DeployerServiceImpl::DeleteVolume(grpc::ServerContext*,
                                               const v1::DeleteVolumeRequest* request,
                                               v1::Volume* response) {
  if (!ids::Valid(request->id(), "vol"))
    return rpc::ToGrpc(InvalidField("id", "is not a volume id"));
  bool mounted = false;
  auto v = runtime_.pool().Transact("delete volume", [&](pg::Tx& tx) -> absl::StatusOr<v1::Volume> {
    auto volume = deployer::GetVolume(tx, request->id());
    if (!volume.ok()) return volume.status();
    if (volume->state() == v1::VOLUME_STATE_DELETED) return volume;
    auto by = DeploymentMounting(tx, *volume);
    if (!by.ok()) return by.status();
    mounted = by->has_value();
    C2D_RETURN_IF_ERROR(MarkVolumeDeleting(tx, volume->id()));
    return deployer::GetVolume(tx, volume->id());
  });
  if (!v.ok()) return rpc::ToGrpc(v.status());
  // A volume in use stays DELETING: the reconciler destroys it once no live
  // or in-progress release mounts it (after the next deploy, or a stop).
  if (v->state() != v1::VOLUME_STATE_DELETED && !mounted) {
    if (auto s = runtime_.DeleteVolume(*v); !s.ok()) return rpc::ToGrpc(s);
    v->set_state(v1::VOLUME_STATE_DELETED);
    v->clear_instance_id();
  }
  *response = std::move(*v);
  return grpc::Status::OK;
}

}  // namespace c2d::deployer
