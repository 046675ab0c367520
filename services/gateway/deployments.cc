#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/rpc/server.h"
#include "libs/rpc/status.h"
#include "services/gateway/gateway.h"

namespace c2d::gateway {
namespace {

json BuildJson(const v1::Build& b) {
  return {{"id", b.id()},
          {"state", EnumText(v1::BuildState_Name(b.state()), 12)},
          {"commit", OrNull(b.commit_sha())},
          {"commit_message", b.commit_message()},
          {"branch", b.source().branch()},
          {"image", b.image_digest().empty() ? json(nullptr)
                                             : json(b.image_repository() + "@" + b.image_digest())},
          {"failure_reason", OrNull(b.failure_reason())},
          {"deployment_id", OrNull(b.deployment_id())},
          {"created_at", Time(Micros(b.created_at()))},
          {"started_at", Time(Micros(b.started_at()))},
          {"finished_at", Time(Micros(b.finished_at()))}};
}

json DeploymentJson(const v1::Deployment& d) {
  return {{"id", d.id()},
          {"state", EnumText(v1::DeploymentState_Name(d.state()), 17)},
          {"build_id", d.build_id()},
          {"image", d.image_repository() + "@" + d.image_digest()},
          {"revision", d.spec().revision()},
          {"rollback_of", OrNull(d.rollback_of())},
          {"failure_reason", OrNull(d.failure_reason())},
          {"created_at", Time(Micros(d.created_at()))},
          {"started_at", Time(Micros(d.started_at()))},
          {"live_at", Time(Micros(d.live_at()))},
          {"finished_at", Time(Micros(d.finished_at()))}};
}

json InstanceJson(const v1::Instance& i) {
  json j = {{"id", i.id()},
            {"deployment_id", i.deployment_id()},
            {"state", EnumText(v1::InstanceState_Name(i.state()), 15)},
            {"address", i.port() > 0 ? json(absl::StrCat(i.host(), ":", i.port())) : json(nullptr)},
            {"restarts", i.restarts()},
            {"created_at", Time(Micros(i.created_at()))},
            {"stopped_at", Time(Micros(i.stopped_at()))}};
  if (i.has_last_health_check()) {
    j["last_health_check"] = {{"ok", i.last_health_check().ok()},
                              {"detail", i.last_health_check().detail()},
                              {"at", Time(Micros(i.last_health_check().time()))}};
  } else {
    j["last_health_check"] = nullptr;
  }
  return j;
}

}  // namespace

// ---- deployments

absl::StatusOr<json> Gateway::DeploymentView(Call& c, const std::string& id,
                                             std::string* service_id) {
  json view = {{"id", id}, {"build", nullptr}, {"deployment", nullptr}};
  std::string deployment_id, build_id;
  if (ids::Valid(id, "bld")) {
    build_id = id;
  } else if (ids::Valid(id, "dep")) {
    deployment_id = id;
  } else {
    return absl::NotFoundError(absl::StrCat("deployment ", id.substr(0, 64), " does not exist"));
  }
  if (!deployment_id.empty()) {
    grpc::ClientContext ctx;
    Context(ctx, c);
    v1::GetDeploymentRequest req;
    req.set_id(deployment_id);
    v1::Deployment d;
    if (auto g = deployer_->GetDeployment(&ctx, req, &d); !g.ok()) return rpc::FromGrpc(g);
    *service_id = d.service_id();
    view["deployment"] = DeploymentJson(d);
    build_id = d.rollback_of().empty() ? d.build_id() : "";
  }
  if (!build_id.empty()) {
    grpc::ClientContext ctx;
    Context(ctx, c);
    v1::GetBuildRequest req;
    req.set_id(build_id);
    v1::Build b;
    absl::Status s = rpc::FromGrpc(builder_->GetBuild(&ctx, req, &b));
    if (s.ok()) {
      *service_id = b.service_id();
      view["build"] = BuildJson(b);
      if (deployment_id.empty() && !b.deployment_id().empty()) {
        grpc::ClientContext dctx;
        Context(dctx, c);
        v1::GetDeploymentRequest dreq;
        dreq.set_id(b.deployment_id());
        v1::Deployment d;
        if (deployer_->GetDeployment(&dctx, dreq, &d).ok()) view["deployment"] = DeploymentJson(d);
      }
    } else if (deployment_id.empty() || !absl::IsNotFound(s)) {
      return s;
    }
  }
  // Another tenant's release is "not found", like anything else of theirs.
  auto sp = AuthorizeService(c, *service_id, Role::kViewer);
  if (absl::IsNotFound(sp.status())) {
    return absl::NotFoundError(absl::StrCat("deployment ", id, " does not exist"));
  }
  if (!sp.ok()) return sp.status();
  view["service_id"] = *service_id;
  return view;
}

httpd::Response Gateway::CreateDeployment(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(c.req.body, {"commit"}, /*empty_ok=*/true);
  if (!body.ok()) return FromStatus(body.status());
  std::string commit;
  if (auto s = GetString(*body, "commit", "", &commit, 64); !s.ok()) return FromStatus(s);
  const Service& s = sp->first;
  auto spec = Spec(s, c.request_id);
  if (!spec.ok()) return FromStatus(spec.status());
  v1::StartBuildRequest start;
  start.set_service_id(s.id);
  auto source = BuildSource(s);
  if (!source.ok()) return FromStatus(source.status());
  *start.mutable_source() = std::move(*source);
  start.mutable_source()->set_commit(commit);
  *start.mutable_settings() = s.build;
  *start.mutable_spec() = *spec;
  start.set_trigger(v1::BUILD_TRIGGER_API);
  start.set_requested_by(c.who.user_id);
  grpc::ClientContext ctx;
  Context(ctx, c);  // StartBuild never waits on git: the build job resolves the branch
  v1::StartBuildResponse started;
  if (auto g = builder_->StartBuild(&ctx, start, &started); !g.ok()) {
    absl::Status st = rpc::FromGrpc(g);
    if (rpc::ErrorField(st) == "source.commit") {
      return FromStatus(FieldError("commit", "must be a full commit id (40 or 64 hex digits)"));
    }
    return FromStatus(st);
  }
  std::string id = started.build().id();
  // The same commit built before: a new release of its image with the
  // service's settings as they are now (a "redeploy").
  if (!started.created() && started.build().state() == v1::BUILD_STATE_SUCCEEDED) {
    grpc::ClientContext dctx;
    Context(dctx, c);
    v1::DeployRequest deploy;
    deploy.set_service_id(s.id);
    deploy.set_build_id(started.build().id());
    deploy.set_image_repository(started.build().image_repository());
    deploy.set_image_digest(started.build().image_digest());
    *deploy.mutable_spec() = *spec;
    deploy.set_request_id(c.request_id);
    v1::Deployment d;
    if (auto g = deployer_->Deploy(&dctx, deploy, &d); !g.ok()) return FromStatus(rpc::FromGrpc(g));
    id = d.id();
  }
  if (auto a = AuditMutation(c, s.project_id, "deployment.create", id,
                             {{"commit", started.build().commit_sha()}});
      !a.ok()) {
    return FromStatus(a);
  }
  std::string service_id;
  auto view = DeploymentView(c, id, &service_id);
  if (!view.ok()) return FromStatus(view.status());
  httpd::Response r = Json(202, *view);
  r.headers.emplace_back("Location", "/v1/deployments/" + id);
  return r;
}

httpd::Response Gateway::ListDeployments(Call& c) {
  return ServicePage<v1::ListDeploymentsRequest, v1::ListDeploymentsResponse>(
      c, *deployer_, &v1::DeployerService::Stub::ListDeployments, "deployments",
      [](const v1::ListDeploymentsResponse& r) {
        json items = json::array();
        for (const v1::Deployment& d : r.deployments()) items.push_back(DeploymentJson(d));
        return items;
      });
}

httpd::Response Gateway::GetDeployment(Call& c) {
  std::string service_id;
  auto view = DeploymentView(c, c.req.params["id"], &service_id);
  if (!view.ok()) return FromStatus(view.status());
  return Json(200, *view);
}

httpd::Response Gateway::Rollback(Call& c) {
  std::string service_id;
  auto target = DeploymentView(c, c.req.params["id"], &service_id);
  if (!target.ok()) return FromStatus(target.status());
  auto sp = AuthorizeService(c, service_id, Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(c.req.body, {}, /*empty_ok=*/true);
  if (!body.ok()) return FromStatus(body.status());
  if ((*target)["deployment"].is_null()) {
    return Error(
        409, "failed_precondition",
        absl::StrCat(c.req.params["id"], " never became a release; nothing to roll back to"));
  }
  return RollbackTo(c, sp->first, sp->second, (*target)["deployment"]["id"].get<std::string>());
}

httpd::Response Gateway::RollbackService(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(c.req.body, {"to"}, /*empty_ok=*/true);
  if (!body.ok()) return FromStatus(body.status());
  std::string to;
  if (auto s = GetString(*body, "to", "", &to, 64); !s.ok()) return FromStatus(s);
  if (!to.empty() && !ids::Valid(to, "dep")) {
    return FromStatus(FieldError("to", "must be a deployment id (dep_…)"));
  }
  return RollbackTo(c, sp->first, sp->second, to);
}

httpd::Response Gateway::RollbackTo(Call& c, const Service& s, const Project& p,
                                    const std::string& to) {
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::RollbackRequest req;
  req.set_service_id(s.id);
  req.set_to_deployment_id(to);
  req.set_request_id(c.request_id);
  v1::Deployment d;
  if (auto g = deployer_->Rollback(&ctx, req, &d); !g.ok()) {
    absl::Status st = rpc::FromGrpc(g);
    // Another service's release is as absent as another tenant's.
    if (absl::IsNotFound(st))
      return Error(404, "not_found", "deployment " + to + " does not exist");
    return FromStatus(st);
  }
  if (auto a = AuditMutation(c, p.id, "deployment.rollback", d.id(), {{"to", d.rollback_of()}});
      !a.ok()) {
    return FromStatus(a);
  }
  std::string service_id;
  auto view = DeploymentView(c, d.id(), &service_id);
  if (!view.ok()) return FromStatus(view.status());
  httpd::Response r = Json(202, *view);
  r.headers.emplace_back("Location", "/v1/deployments/" + d.id());
  return r;
}

httpd::Response Gateway::ListInstances(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::ListInstancesRequest req;
  req.set_service_id(sp->first.id);
  req.set_include_stopped(c.req.Query("include_stopped") == "true");
  req.mutable_page()->set_page_size(200);
  v1::ListInstancesResponse resp;
  if (auto g = deployer_->ListInstances(&ctx, req, &resp); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  json items = json::array();
  for (const v1::Instance& i : resp.instances()) items.push_back(InstanceJson(i));
  return Json(200, {{"instances", items}});
}

}  // namespace c2d::gateway
