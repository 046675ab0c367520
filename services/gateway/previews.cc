// Preview environments: a pull request (GitHub) or merge request (GitLab)
// to a service's branch, from a branch of the same repository, gets a
// service <service>-pr-<n> in the same project with the parent's settings and
// env (secret values copied still sealed), deployed from the request's head
// commit and redeployed at each new commit; closing the request deletes it
// (its images go with the builder's image GC of deleted services).
//
// A fork's pull request gets no preview: its code would run with the
// parent's env, secrets included.

#include <regex>

#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/rpc/server.h"
#include "libs/rpc/validate.h"
#include "services/gateway/gateway.h"
#include "services/gateway/service_body.h"

namespace c2d::gateway {
namespace {

// <parent>-pr-<n>, the parent's name shortened to keep it a valid name.
std::string PreviewName(const std::string& parent, int64_t number) {
  const std::string suffix = absl::StrCat("-pr-", number);
  std::string base = parent.substr(0, 39 - suffix.size());
  while (!base.empty() && base.back() == '-') base.pop_back();
  return base + suffix;
}

// Why `pr` gets no preview of `parent`, or "" when it does.
std::string Refusal(const Service& parent, const PullRequest& pr) {
  static const std::regex kBranch("^[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}$");
  using A = PullRequest::Action;
  if (pr.action == A::kOther) {
    return absl::StrCat("pull request action ", pr.action_name.empty() ? "(none)" : pr.action_name,
                        " changes no preview");
  }
  if (!parent.preview_of.empty()) return "the service is itself a preview";
  if (pr.number <= 0 || pr.number > 1'000'000'000) return "the pull request has no valid number";
  if (pr.base_ref != parent.source.branch()) {
    return absl::StrCat("a pull request into ", pr.base_ref, ", not into ", parent.source.branch());
  }
  if (pr.action == A::kClose) return "";
  if (!pr.same_repository) {
    return "a pull request from a fork: previews run only branches of the service's own "
           "repository (a fork's code would get the service's env and secrets)";
  }
  if (pr.head_commit.empty()) return "the pull request names no head commit";
  if (!std::regex_match(pr.head_ref, kBranch) || pr.head_ref.find("..") != std::string::npos) {
    return "the pull request's branch name is not one c2d builds";
  }
  return "";
}

}  // namespace

absl::StatusOr<Service> Gateway::EnsurePreview(const Service& parent, const PullRequest& pr,
                                               const std::string& request_id) {
  Service p = parent;
  p.id = ids::New("svc");
  p.name = PreviewName(parent.name, pr.number);
  p.source.set_branch(pr.head_ref);
  p.auto_deploy = false;
  p.preview_of = parent.id;
  p.preview_number = static_cast<int>(pr.number);
  if (!parent.repo_url_sealed.empty()) {
    // Sealed to its service: opened as the parent's, sealed as the preview's.
    auto source = BuildSource(parent);
    if (!source.ok()) return source.status();
    C2D_RETURN_IF_ERROR(SealRepoUrl(&p, source->repo_url(), config_));
  }
  return pool_.Transact("preview", [&](pg::Tx& tx) -> absl::StatusOr<Service> {
    // Deliveries at once: two of one pull request make one preview, and the
    // cap holds however many arrive.
    C2D_RETURN_IF_ERROR(gateway::LockPreviews(tx, parent.project_id));
    C2D_ASSIGN_OR_RETURN(std::optional<Service> live,
                         gateway::FindPreview(tx, parent.id, p.preview_number));
    if (live.has_value()) return *live;
    C2D_ASSIGN_OR_RETURN(int previews, gateway::CountPreviews(tx, parent.project_id));
    if (previews >= config_.previews_per_project) {
      return absl::FailedPreconditionError(
          absl::StrCat("the project has ", previews, " live previews, its cap (",
                       "C2D_PREVIEWS_PER_PROJECT); close a pull request to free one"));
    }
    C2D_RETURN_IF_ERROR(gateway::InsertService(tx, p));
    C2D_ASSIGN_OR_RETURN(std::vector<v1::EnvVar> env, gateway::ListEnv(tx, parent.id));
    for (const v1::EnvVar& v : env) C2D_RETURN_IF_ERROR(gateway::PutEnv(tx, p.id, v));
    C2D_RETURN_IF_ERROR(gateway::Audit(
        tx, {"",
             "",
             p.project_id,
             "service.create",
             p.id,
             request_id,
             "",
             {{"name", p.name}, {"preview_of", parent.id}, {"pull_request", pr.number}}}));
    return gateway::GetService(tx, p.id);
  });
}

absl::Status Gateway::RemoveService(const Service& s, const AuditEntry& actor) {
  auto previews =
      pool_.Transact("previews", [&](pg::Tx& tx) { return gateway::PreviewsOf(tx, s.id); });
  if (!previews.ok()) return previews.status();
  for (const std::string& id : *previews) {
    auto p = pool_.Transact("service", [&](pg::Tx& tx) { return gateway::GetService(tx, id); });
    if (absl::IsNotFound(p.status())) continue;
    if (!p.ok()) return p.status();
    C2D_RETURN_IF_ERROR(RemoveService(*p, actor));
  }
  // Its instances stop (asynchronously) before the row goes.
  grpc::ClientContext ctx;
  Context(ctx, actor.request_id);
  v1::StopServiceRequest stop;
  stop.set_service_id(s.id);
  stop.set_delete_volumes(true);
  stop.set_reason(s.preview_of.empty() ? "service deleted" : "pull request closed");
  v1::StopServiceResponse stopped;
  if (auto g = deployer_->StopService(&ctx, stop, &stopped); !g.ok()) return rpc::FromGrpc(g);
  return pool_.Transact("delete service", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(gateway::DeleteService(tx, s.id));
    AuditEntry e = actor;
    e.project_id = s.project_id;
    e.action = "service.delete";
    e.resource_id = s.id;
    e.details = {{"name", s.name}};
    if (!s.preview_of.empty()) e.details["preview_of"] = s.preview_of;
    return gateway::Audit(tx, e);
  });
}

httpd::Response Gateway::ReceivePullRequest(httpd::Request& req, const Service& parent, Delivery d,
                                            const PullRequest& pr) {
  const std::string request_id = req.Header("x-request-id");
  d.ref = ("refs/heads/" + pr.head_ref).substr(0, 255);
  d.commit_sha = pr.head_commit;
  d.event = absl::StrCat(d.event, " ", pr.action_name).substr(0, 100);
  if (std::string why = Refusal(parent, pr); !why.empty()) {
    return RecordDelivery(req, parent, d, why);
  }
  if (pr.action == PullRequest::Action::kClose) {
    auto live = pool_.Transact("preview", [&](pg::Tx& tx) {
      return gateway::FindPreview(tx, parent.id, static_cast<int>(pr.number));
    });
    if (!live.ok()) return FromStatus(live.status());
    if (!live->has_value()) {
      return RecordDelivery(req, parent, d,
                            absl::StrCat("pull request ", pr.number, " has no preview"));
    }
    d.outcome = "accepted";
    auto fresh = pool_.Transact("delivery", [&](pg::Tx& tx) -> absl::StatusOr<bool> {
      C2D_ASSIGN_OR_RETURN(bool inserted, gateway::InsertDelivery(tx, d));
      if (inserted) C2D_RETURN_IF_ERROR(gateway::SetDeliveryPreview(tx, d.id, (*live)->id, ""));
      return inserted;
    });
    if (!fresh.ok()) return FromStatus(fresh.status());
    if (!*fresh) return Json(200, {{"status", "duplicate"}, {"delivery_id", d.delivery_id}});
    AuditEntry actor{"", "", "", "", "", request_id, req.remote_addr, {}};
    if (absl::Status st = RemoveService(**live, actor); !st.ok()) {
      // Forget the delivery, so the sender's retry deletes it.
      (void)pool_.Transact("delivery",
                           [&](pg::Tx& tx) { return gateway::DeleteDelivery(tx, d.id); });
      return FromStatus(st);
    }
    log::Info("preview deleted", {{"service_id", (*live)->id}, {"pull_request", pr.number}});
    return Json(200, {{"status", "deleted"}, {"service_id", (*live)->id}});
  }
  auto preview = EnsurePreview(parent, pr, request_id);
  if (absl::IsFailedPrecondition(preview.status())) {
    return RecordDelivery(req, parent, d, std::string(preview.status().message()));
  }
  if (!preview.ok()) return FromStatus(preview.status());
  d.outcome = "accepted";
  httpd::Response r = RecordDelivery(req, *preview, d, "");
  if (r.status == 202) {
    const std::string url = preview->type == v1::SERVICE_TYPE_WEB
                                ? config_.AppUrl(preview->name, preview->project_name)
                                : "";
    auto st = pool_.Transact("delivery", [&](pg::Tx& tx) {
      return gateway::SetDeliveryPreview(tx, d.id, preview->id, url);
    });
    if (!st.ok()) return FromStatus(st);
    json body = json::parse(r.body, nullptr, false);
    if (body.is_object()) {
      body["preview"] = {{"service_id", preview->id},
                         {"name", preview->name},
                         {"url", url.empty() ? json(nullptr) : json(url)}};
      r.body = body.dump();
    }
  }
  return r;
}

}  // namespace c2d::gateway
