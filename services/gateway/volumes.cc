// Volumes (DESIGN point 13) and a service's runtime figures. A volume is
// recorded by the deployer and mounted from the service's next deploy; on
// this installation it is a directory on the host.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "services/gateway/gateway.h"

namespace c2d::gateway {
namespace {

json VolumeJson(const v1::Volume& v) {
  return {{"id", v.id()},
          {"service_id", v.service_id()},
          {"name", v.name()},
          {"size_gb", v.size_gb()},
          {"mount_path", v.mount_path()},
          {"state", EnumText(v1::VolumeState_Name(v.state()), 13)},
          {"instance_id", OrNull(v.instance_id())},
          {"created_at", Time(Micros(v.created_at()))}};
}

// Volumes that releases mount: not being deleted, not failed.
bool Mountable(const v1::Volume& v) {
  return v.state() == v1::VOLUME_STATE_PENDING || v.state() == v1::VOLUME_STATE_AVAILABLE ||
         v.state() == v1::VOLUME_STATE_ATTACHED;
}

}  // namespace

absl::StatusOr<std::vector<v1::Volume>> Gateway::ServiceVolumes(const std::string& service_id,
                                                                const std::string& request_id) {
  std::vector<v1::Volume> out;
  v1::ListVolumesRequest req;
  req.set_service_id(service_id);
  req.mutable_page()->set_page_size(100);
  for (;;) {
    grpc::ClientContext ctx;
    Context(ctx, request_id);
    v1::ListVolumesResponse resp;
    if (auto g = deployer_->ListVolumes(&ctx, req, &resp); !g.ok()) return rpc::FromGrpc(g);
    for (v1::Volume& v : *resp.mutable_volumes()) {
      if (Mountable(v)) out.push_back(std::move(v));
    }
    if (resp.next_page_token().empty()) return out;
    req.mutable_page()->set_page_token(resp.next_page_token());
  }
}

httpd::Response Gateway::CreateVolume(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(c.req.body, {"name", "size_gb", "mount_path"});
  if (!body.ok()) return FromStatus(body.status());
  std::string name, mount_path;
  int size_gb = 1;
  if (auto s = GetString(*body, "name", "", &name, 64); !s.ok()) return FromStatus(s);
  if (!rpc::ValidName(name)) return FromStatus(FieldError("name", rpc::kNameRule));
  if (auto s = GetInt(*body, "size_gb", "", 1, 1024, &size_gb); !s.ok()) return FromStatus(s);
  if (auto s = GetString(*body, "mount_path", "", &mount_path, 1024); !s.ok()) {
    return FromStatus(s);
  }
  if (!rpc::ValidMountPath(mount_path)) {
    return FromStatus(
        FieldError("mount_path", "must be an absolute path, not \"/\", without \"..\""));
  }
  const Service& s = sp->first;
  if (s.run.instance_count() > 1) {
    return Error(409, "failed_precondition",
                 absl::StrCat("service ", s.name, " runs ", s.run.instance_count(),
                              " instances; a volume is mounted by one, so set run.instance_count "
                              "to 1 first"),
                 "run.instance_count");
  }
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::CreateVolumeRequest req;
  req.set_service_id(s.id);
  req.set_project_id(s.project_id);
  req.set_name(name);
  req.set_size_gb(size_gb);
  req.set_mount_path(mount_path);
  v1::Volume v;
  if (auto g = deployer_->CreateVolume(&ctx, req, &v); !g.ok()) return FromStatus(rpc::FromGrpc(g));
  if (auto a = AuditMutation(c, s.project_id, "volume.create", v.id(),
                             {{"name", name}, {"mount_path", mount_path}, {"size_gb", size_gb}});
      !a.ok()) {
    return FromStatus(a);
  }
  json out = VolumeJson(v);
  out["note"] = "mounted from the service's next deploy";
  httpd::Response r = Json(201, out);
  r.headers.emplace_back("Location", "/v1/volumes/" + v.id());
  return r;
}

httpd::Response Gateway::ListVolumes(Call& c) {
  return ServicePage<v1::ListVolumesRequest, v1::ListVolumesResponse>(
      c, *deployer_, &v1::DeployerService::Stub::ListVolumes, "volumes",
      [](const v1::ListVolumesResponse& r) {
        json items = json::array();
        for (const v1::Volume& v : r.volumes()) items.push_back(VolumeJson(v));
        return items;
      });
}

httpd::Response Gateway::DeleteVolume(Call& c) {
  const std::string id = c.req.params["id"];
  const std::string not_found = absl::StrCat("volume ", id.substr(0, 64), " does not exist");
  if (!ids::Valid(id, "vol")) return Error(404, "not_found", not_found);
  grpc::ClientContext gctx;
  Context(gctx, c);
  v1::GetVolumeRequest get;
  get.set_id(id);
  v1::Volume v;
  if (auto g = deployer_->GetVolume(&gctx, get, &v); !g.ok()) {
    absl::Status s = rpc::FromGrpc(g);
    return absl::IsNotFound(s) ? Error(404, "not_found", not_found) : FromStatus(s);
  }
  // Another tenant's volume is "not found", like anything else of theirs.
  auto sp = AuthorizeService(c, v.service_id(), Role::kAdmin);
  if (absl::IsNotFound(sp.status())) return Error(404, "not_found", not_found);
  if (!sp.ok()) return FromStatus(sp.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::DeleteVolumeRequest req;
  req.set_id(id);
  if (auto g = deployer_->DeleteVolume(&ctx, req, &v); !g.ok()) return FromStatus(rpc::FromGrpc(g));
  if (auto a = AuditMutation(c, sp->second.id, "volume.delete", id, {{"name", v.name()}});
      !a.ok()) {
    return FromStatus(a);
  }
  json out = VolumeJson(v);
  if (v.state() == v1::VOLUME_STATE_DELETING) {
    out["note"] =
        "the live release still mounts it: its data is destroyed once a release without it goes "
        "live (deploy the service) or the service stops";
  }
  return Json(200, out);
}

httpd::Response Gateway::ServiceMetrics(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  grpc::ClientContext ictx;
  Context(ictx, c);
  v1::ListInstancesRequest ireq;
  ireq.set_service_id(sp->first.id);
  ireq.mutable_page()->set_page_size(200);
  v1::ListInstancesResponse instances;
  if (auto g = deployer_->ListInstances(&ictx, ireq, &instances); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  json by_state = json::object();
  for (const char* state : {"starting", "healthy", "unhealthy", "draining", "crash_loop", "lost"}) {
    by_state[state] = 0;
  }
  int64_t restarts = 0, checks = 0, failed_checks = 0;
  for (const v1::Instance& i : instances.instances()) {
    const std::string state = EnumText(v1::InstanceState_Name(i.state()), 15);
    by_state[state] = by_state.value(state, 0) + 1;
    restarts += i.restarts();
    if (i.has_last_health_check()) {
      ++checks;
      failed_checks += i.last_health_check().ok() ? 0 : 1;
    }
  }
  grpc::ClientContext dctx;
  Context(dctx, c);
  v1::ListDeploymentsRequest dreq;
  dreq.set_service_id(sp->first.id);
  dreq.mutable_page()->set_page_size(50);
  v1::ListDeploymentsResponse deployments;
  if (auto g = deployer_->ListDeployments(&dctx, dreq, &deployments); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  json outcomes = json::object();
  json live = nullptr;
  std::vector<double> seconds;
  for (const v1::Deployment& d : deployments.deployments()) {
    const std::string state = EnumText(v1::DeploymentState_Name(d.state()), 17);
    outcomes[state] = outcomes.value(state, 0) + 1;
    if (d.state() == v1::DEPLOYMENT_STATE_LIVE) live = d.id();
    if (Micros(d.live_at()) > 0 && Micros(d.started_at()) > 0) {
      seconds.push_back(static_cast<double>(Micros(d.live_at()) - Micros(d.started_at())) / 1e6);
    }
  }
  std::sort(seconds.begin(), seconds.end());
  return Json(200, {{"service_id", sp->first.id},
                    {"live_deployment_id", live},
                    {"instances", by_state},
                    {"restarts", restarts},
                    {"health", {{"probed", checks}, {"failing", failed_checks}}},
                    {"recent_deployments",
                     {{"count", deployments.deployments_size()},
                      {"by_state", outcomes},
                      {"median_seconds_to_live",
                       seconds.empty() ? json(nullptr) : json(seconds[seconds.size() / 2])}}}});
}

}  // namespace c2d::gateway
