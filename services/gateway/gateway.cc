#include "services/gateway/gateway.h"

#include <google/protobuf/util/time_util.h>

#include <regex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "libs/http/client.h"
#include "libs/metrics/metrics.h"
#include "libs/rpc/server.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "prometheus/text_serializer.h"
#include "services/gateway/openapi.h"

namespace c2d::gateway {
namespace {

using google::protobuf::util::TimeUtil;

constexpr absl::Duration kTokenCacheTtl = absl::Seconds(5);
constexpr int kDefaultPage = 50, kMaxPage = 200;

int64_t Micros(const google::protobuf::Timestamp& t) {
  return t.seconds() == 0 && t.nanos() == 0 ? 0 : TimeUtil::TimestampToMicroseconds(t);
}

// ?page_size= (default 50, at most 200).
absl::StatusOr<int> PageSize(const httpd::Request& req) {
  const std::string v = req.Query("page_size");
  if (v.empty()) return kDefaultPage;
  int n = 0;
  if (!absl::SimpleAtoi(v, &n) || n < 1)
    return FieldError("page_size", "must be a positive integer");
  return std::min(n, kMaxPage);
}

std::string Lower(std::string s) { return absl::AsciiStrToLower(s); }

// "DEPLOYMENT_STATE_LIVE" -> "live".
template <typename E>
std::string EnumText(const std::string& name, size_t prefix) {
  return Lower(name.substr(prefix));
}

json BuildJson(const v1::Build& b) {
  return {{"id", b.id()},
          {"state", EnumText<v1::BuildState>(v1::BuildState_Name(b.state()), 12)},
          {"commit", b.commit_sha()},
          {"commit_message", b.commit_message()},
          {"branch", b.source().branch()},
          {"image", b.image_digest().empty() ? json(nullptr)
                                             : json(b.image_repository() + "@" + b.image_digest())},
          {"failure_reason", b.failure_reason().empty() ? json(nullptr) : json(b.failure_reason())},
          {"deployment_id", b.deployment_id().empty() ? json(nullptr) : json(b.deployment_id())},
          {"created_at", Time(Micros(b.created_at()))},
          {"started_at", Time(Micros(b.started_at()))},
          {"finished_at", Time(Micros(b.finished_at()))}};
}

json DeploymentJson(const v1::Deployment& d) {
  return {{"id", d.id()},
          {"state", EnumText<v1::DeploymentState>(v1::DeploymentState_Name(d.state()), 17)},
          {"build_id", d.build_id()},
          {"image", d.image_repository() + "@" + d.image_digest()},
          {"revision", d.spec().revision()},
          {"rollback_of", d.rollback_of().empty() ? json(nullptr) : json(d.rollback_of())},
          {"failure_reason", d.failure_reason().empty() ? json(nullptr) : json(d.failure_reason())},
          {"created_at", Time(Micros(d.created_at()))},
          {"started_at", Time(Micros(d.started_at()))},
          {"live_at", Time(Micros(d.live_at()))},
          {"finished_at", Time(Micros(d.finished_at()))}};
}

json InstanceJson(const v1::Instance& i) {
  json j = {{"id", i.id()},
            {"deployment_id", i.deployment_id()},
            {"state", EnumText<v1::InstanceState>(v1::InstanceState_Name(i.state()), 15)},
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

const char* StreamName(v1::LogStream s) {
  switch (s) {
    case v1::LOG_STREAM_STDERR:
      return "stderr";
    case v1::LOG_STREAM_SYSTEM:
      return "system";
    default:
      return "stdout";
  }
}

json LogJson(const v1::LogLine& l) {
  json j = {{"seq", l.seq()},
            {"time", Time(Micros(l.time()))},
            {"stream", StreamName(l.stream())},
            {"text", l.text()}};
  if (!l.instance_id().empty()) j["instance_id"] = l.instance_id();
  return j;
}

json EventJson(const v1::DeploymentEvent& e) {
  return {{"seq", e.seq()},
          {"time", Time(Micros(e.time()))},
          {"deployment_id", e.deployment_id()},
          {"instance_id", e.instance_id().empty() ? json(nullptr) : json(e.instance_id())},
          {"kind", e.kind()},
          {"message", e.message()}};
}

bool ValidEmail(const std::string& e) {
  static const std::regex kEmail("^[^@\\s]+@[^@\\s]+$");
  return e.size() <= 254 && std::regex_match(e, kEmail);
}

}  // namespace

Gateway::Gateway(pg::Pool& pool, const Config& config, std::shared_ptr<grpc::Channel> builder,
                 std::shared_ptr<grpc::Channel> deployer)
    : pool_(pool),
      config_(config),
      builder_(v1::BuilderService::NewStub(builder)),
      deployer_(v1::DeployerService::NewStub(deployer)),
      builder_channel_(std::move(builder)),
      deployer_channel_(std::move(deployer)) {
  Add("POST", "/v1/projects", &Gateway::CreateProject, true);
  Add("GET", "/v1/projects", &Gateway::ListProjects, false);
  Add("GET", "/v1/projects/{id}", &Gateway::GetProject, false);
  Add("PATCH", "/v1/projects/{id}", &Gateway::PatchProject, true);
  Add("DELETE", "/v1/projects/{id}", &Gateway::DeleteProject, true);
  Add("GET", "/v1/projects/{id}/members", &Gateway::ListMembers, false);
  Add("POST", "/v1/projects/{id}/members", &Gateway::AddMember, true);
  Add("DELETE", "/v1/projects/{id}/members/{user}", &Gateway::RemoveMember, true);
  Add("POST", "/v1/projects/{id}/services", &Gateway::CreateService, true);
  Add("GET", "/v1/projects/{id}/services", &Gateway::ListServices, false);
  Add("GET", "/v1/services/{id}", &Gateway::GetService, false);
  Add("PATCH", "/v1/services/{id}", &Gateway::PatchService, true);
  Add("DELETE", "/v1/services/{id}", &Gateway::DeleteService, true);
  Add("GET", "/v1/services/{id}/env", &Gateway::GetEnv, false);
  Add("PUT", "/v1/services/{id}/env", &Gateway::PutEnv, true);
  Add("PATCH", "/v1/services/{id}/env", &Gateway::PatchEnv, true);
  Add("DELETE", "/v1/services/{id}/env/{key}", &Gateway::DeleteEnv, true);
  Add("POST", "/v1/services/{id}/deployments", &Gateway::CreateDeployment, true);
  Add("GET", "/v1/services/{id}/deployments", &Gateway::ListDeployments, false);
  Add("GET", "/v1/deployments/{id}", &Gateway::GetDeployment, false);
  Add("POST", "/v1/deployments/{id}/rollback", &Gateway::Rollback, true);
  Add("GET", "/v1/deployments/{id}/logs", &Gateway::DeploymentLogs, false);
  Add("GET", "/v1/services/{id}/logs", &Gateway::ServiceLogs, false);
  Add("GET", "/v1/services/{id}/instances", &Gateway::ListInstances, false);
  Add("POST", "/v1/services/{id}/webhooks", &Gateway::CreateWebhook, true);
  Add("GET", "/v1/services/{id}/webhooks", &Gateway::ListWebhooks, false);
  Add("GET", "/v1/services/{id}/webhook-deliveries", &Gateway::ListDeliveries, false);
  router_.Add("POST", "/v1/webhooks/{provider}/{hook}",
              [this](httpd::Request& r) { return ReceiveWebhook(r); });
  // Capabilities c2d does not run yet: a clear 501 rather than a 404.
  for (const char* pattern : {"/v1/services/{id}/domains", "/v1/projects/{id}/databases"}) {
    Add("GET", pattern, &Gateway::NotBuilt, false);
    Add("POST", pattern, &Gateway::NotBuilt, true);
  }
  for (const char* pattern : {"/v1/domains/{id}", "/v1/databases/{id}"}) {
    Add("DELETE", pattern, &Gateway::NotBuilt, true);
  }
  Add("GET", "/v1/databases/{id}", &Gateway::NotBuilt, false);
  router_.Add("GET", "/v1/openapi.json", [](httpd::Request&) {
    httpd::Response r;
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = OpenApiJson();
    return r;
  });
  router_.Add("GET", "/healthz", [this](httpd::Request& r) { return Healthz(r); });
  router_.Add("GET", "/readyz", [this](httpd::Request& r) { return Readyz(r); });
  router_.Add("GET", "/metrics", [this](httpd::Request& r) { return Metrics(r); });
}

void Gateway::Add(const std::string& method, const std::string& pattern, Route route,
                  bool mutation) {
  router_.Add(method, pattern, [this, route, mutation](httpd::Request& req) -> httpd::Response {
    auto who = Authenticate(req);
    if (!who.ok()) return FromStatus(who.status());
    Call c{req, *who, req.Header("x-request-id")};
    log::Scope scope(nlohmann::json{{"request_id", c.request_id}});
    const std::string key = req.Header("idempotency-key");
    if (!mutation || key.empty()) return (this->*route)(c);
    if (key.size() > 255) return Error(400, "invalid_argument", "Idempotency-Key is too long");
    // The same key with the same request replays the stored answer.
    const std::string sha =
        crypto::Sha256Hex(absl::StrCat(req.method, " ", req.path, "\n", req.body));
    auto begun = pool_.Transact("idempotency", [&](pg::Tx& tx) {
      return BeginIdempotency(tx, c.who.user_id, key, req.method, req.path, sha);
    });
    if (absl::IsFailedPrecondition(begun.status())) {
      return Error(422, "idempotency_key_reused", std::string(begun.status().message()));
    }
    if (!begun.ok()) return FromStatus(begun.status());
    if (begun->has_value()) {
      httpd::Response r;
      r.status = (*begun)->status;
      r.headers.emplace_back("Content-Type", "application/json");
      r.headers.emplace_back("Idempotent-Replayed", "true");
      r.body = (*begun)->body;
      return r;
    }
    httpd::Response r = (this->*route)(c);
    // Server errors are not stored: the client may retry them.
    absl::Status s = pool_.Transact("idempotency", [&](pg::Tx& tx) {
      return r.status >= 500 ? AbandonIdempotency(tx, c.who.user_id, key)
                             : CompleteIdempotency(tx, c.who.user_id, key, r.status, r.body);
    });
    if (!s.ok()) log::Warn("cannot record an idempotent response", {{"error", s.ToString()}});
    return r;
  });
}

httpd::Response Gateway::Handle(httpd::Request& req) { return router_.Dispatch(req); }

absl::StatusOr<Principal> Gateway::Authenticate(const httpd::Request& req) {
  const std::string header = req.Header("authorization");
  if (header.empty()) {
    return absl::UnauthenticatedError("missing Authorization: Bearer <token>");
  }
  if (!absl::StartsWith(header, "Bearer ") || header.size() > 7 + 200) {
    return absl::UnauthenticatedError("Authorization must be \"Bearer <token>\"");
  }
  const std::string sha = crypto::Sha256Hex(header.substr(7));
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = tokens_.find(sha);
    if (it != tokens_.end() && it->second.until > now) return it->second.who;
  }
  auto who = pool_.Transact("authenticate", [&](pg::Tx& tx) -> absl::StatusOr<Principal> {
    auto p = gateway::Authenticate(tx, sha);
    if (!p.ok()) return p.status();
    C2D_RETURN_IF_ERROR(TouchToken(tx, p->token_id));
    return p;
  });
  if (absl::IsNotFound(who.status())) {
    return absl::UnauthenticatedError("the token is unknown, revoked or expired");
  }
  if (!who.ok()) return who.status();
  absl::MutexLock lock(&cache_mu_);
  if (tokens_.size() > 10000) tokens_.clear();  // bounded; refills on demand
  tokens_[sha] = {*who, now + kTokenCacheTtl};
  return who;
}

absl::StatusOr<Project> Gateway::Authorize(Call& c, const std::string& project_id, Role min) {
  if (!ids::Valid(project_id, "prj")) {
    return absl::NotFoundError(
        absl::StrCat("project ", project_id.substr(0, 64), " does not exist"));
  }
  auto p = pool_.Transact(
      "project", [&](pg::Tx& tx) { return gateway::GetProject(tx, project_id, c.who.user_id); });
  if (!p.ok()) return p.status();
  if (p->role < min) {
    return absl::PermissionDeniedError(absl::StrCat("this needs the ", RoleName(min),
                                                    " role or above in project ", p->name,
                                                    "; you are ", RoleName(p->role)));
  }
  return p;
}

absl::StatusOr<std::pair<Service, Project>> Gateway::AuthorizeService(Call& c,
                                                                      const std::string& service_id,
                                                                      Role min) {
  const std::string not_found =
      absl::StrCat("service ", service_id.substr(0, 64), " does not exist");
  if (!ids::Valid(service_id, "svc")) return absl::NotFoundError(not_found);
  auto s =
      pool_.Transact("service", [&](pg::Tx& tx) { return gateway::GetService(tx, service_id); });
  if (!s.ok()) return s.status();
  auto p = Authorize(c, s->project_id, min);
  if (absl::IsNotFound(p.status())) return absl::NotFoundError(not_found);
  if (!p.ok()) return p.status();
  return std::make_pair(std::move(*s), std::move(*p));
}

absl::Status Gateway::AuditMutation(Call& c, const std::string& project_id,
                                    const std::string& action, const std::string& resource_id,
                                    json details) {
  return pool_.Transact("audit", [&](pg::Tx& tx) {
    return Audit(tx, {c.who.user_id, c.who.token_id, project_id, action, resource_id, c.request_id,
                      c.req.remote_addr, std::move(details)});
  });
}

void Gateway::Context(grpc::ClientContext& ctx, const Call& c) const {
  ctx.set_deadline(std::chrono::system_clock::now() + config_.rpc_timeout);
  ctx.AddMetadata(rpc::kRequestIdKey, c.request_id);
}

httpd::Response Gateway::NotBuilt(Call& c) {
  return Error(501, "not_implemented",
               absl::StrCat(c.req.method, " ", c.req.path,
                            ": this c2d does not run managed databases or custom domains yet"));
}

// ---- projects and members

namespace {

json ProjectJson(const Project& p) {
  return {{"id", p.id},
          {"name", p.name},
          {"role", RoleName(p.role)},
          {"created_at", Time(absl::ToUnixMicros(p.created_at))}};
}

}  // namespace

httpd::Response Gateway::CreateProject(Call& c) {
  auto body = ParseObject(c.req.body, {"name"});
  if (!body.ok()) return FromStatus(body.status());
  std::string name;
  if (auto s = GetString(*body, "name", "", &name, 64); !s.ok()) return FromStatus(s);
  if (!rpc::ValidName(name)) return FromStatus(FieldError("name", rpc::kNameRule));
  auto p = pool_.Transact("create project", [&](pg::Tx& tx) -> absl::StatusOr<Project> {
    auto p = gateway::CreateProject(tx, name, c.who.user_id);
    if (!p.ok()) return p.status();
    C2D_RETURN_IF_ERROR(Audit(tx, {c.who.user_id,
                                   c.who.token_id,
                                   p->id,
                                   "project.create",
                                   p->id,
                                   c.request_id,
                                   c.req.remote_addr,
                                   {{"name", name}}}));
    return p;
  });
  if (absl::IsAlreadyExists(p.status())) {
    return Error(409, "already_exists", absl::StrCat("a project named ", name, " exists"), "name");
  }
  if (!p.ok()) return FromStatus(p.status());
  return Json(201, ProjectJson(*p));
}

httpd::Response Gateway::ListProjects(Call& c) {
  auto size = PageSize(c.req);
  if (!size.ok()) return FromStatus(size.status());
  const std::string after = c.req.Query("page_token");
  auto list = pool_.Transact("list projects", [&](pg::Tx& tx) {
    return gateway::ListProjects(tx, c.who.user_id, *size + 1, after);
  });
  if (!list.ok()) return FromStatus(list.status());
  json items = json::array();
  for (int i = 0; i < static_cast<int>(list->size()) && i < *size; ++i) {
    items.push_back(ProjectJson((*list)[i]));
  }
  const bool more = static_cast<int>(list->size()) > *size;
  return Json(200, {{"projects", items},
                    {"next_page_token", more ? json((*list)[*size - 1].name) : json(nullptr)}});
}

httpd::Response Gateway::GetProject(Call& c) {
  auto p = Authorize(c, c.req.params["id"], Role::kViewer);
  if (!p.ok()) return FromStatus(p.status());
  return Json(200, ProjectJson(*p));
}

httpd::Response Gateway::PatchProject(Call& c) {
  auto p = Authorize(c, c.req.params["id"], Role::kAdmin);
  if (!p.ok()) return FromStatus(p.status());
  auto body = ParseObject(c.req.body, {"name"});
  if (!body.ok()) return FromStatus(body.status());
  std::string name = p->name;
  if (auto s = GetString(*body, "name", "", &name, 64); !s.ok()) return FromStatus(s);
  if (!rpc::ValidName(name)) return FromStatus(FieldError("name", rpc::kNameRule));
  // Hostnames contain the project's name: a rename applies at the next deploy.
  absl::Status s = pool_.Transact("rename project", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(RenameProject(tx, p->id, name));
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      p->id,
                      "project.update",
                      p->id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"name", name}}});
  });
  if (absl::IsAlreadyExists(s)) {
    return Error(409, "already_exists", absl::StrCat("a project named ", name, " exists"), "name");
  }
  if (!s.ok()) return FromStatus(s);
  p->name = name;
  return Json(200, ProjectJson(*p));
}

httpd::Response Gateway::DeleteProject(Call& c) {
  auto p = Authorize(c, c.req.params["id"], Role::kOwner);
  if (!p.ok()) return FromStatus(p.status());
  auto services =
      pool_.Transact("services", [&](pg::Tx& tx) { return ServicesOfProject(tx, p->id); });
  if (!services.ok()) return FromStatus(services.status());
  if (!services->empty()) {
    return Error(409, "failed_precondition",
                 absl::StrCat("project ", p->name, " still has ", services->size(),
                              " service(s); delete them first"));
  }
  absl::Status s = pool_.Transact("delete project", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(gateway::DeleteProject(tx, p->id));
    return Audit(tx, {c.who.user_id, c.who.token_id, p->id, "project.delete", p->id, c.request_id,
                      c.req.remote_addr, json::object()});
  });
  if (!s.ok()) return FromStatus(s);
  httpd::Response r;
  r.status = 204;
  return r;
}

httpd::Response Gateway::ListMembers(Call& c) {
  auto p = Authorize(c, c.req.params["id"], Role::kViewer);
  if (!p.ok()) return FromStatus(p.status());
  auto members =
      pool_.Transact("members", [&](pg::Tx& tx) { return gateway::ListMembers(tx, p->id); });
  if (!members.ok()) return FromStatus(members.status());
  json items = json::array();
  for (const Member& m : *members) {
    items.push_back({{"user_id", m.user_id}, {"email", m.email}, {"role", RoleName(m.role)}});
  }
  return Json(200, {{"members", items}});
}

httpd::Response Gateway::AddMember(Call& c) {
  auto p = Authorize(c, c.req.params["id"], Role::kAdmin);
  if (!p.ok()) return FromStatus(p.status());
  auto body = ParseObject(c.req.body, {"email", "role"});
  if (!body.ok()) return FromStatus(body.status());
  std::string email, role_name;
  if (auto s = GetString(*body, "email", "", &email, 254); !s.ok()) return FromStatus(s);
  if (auto s = GetString(*body, "role", "", &role_name, 20); !s.ok()) return FromStatus(s);
  if (!ValidEmail(email)) return FromStatus(FieldError("email", "must be an email address"));
  auto role = ParseRole(role_name);
  if (!role) return FromStatus(FieldError("role", "must be owner, admin, developer or viewer"));
  if (*role == Role::kOwner && p->role != Role::kOwner) {
    return Error(403, "permission_denied", "only an owner can make another owner");
  }
  auto user = pool_.Transact("add member", [&](pg::Tx& tx) -> absl::StatusOr<User> {
    auto u = UpsertUser(tx, email, "");
    if (!u.ok()) return u.status();
    C2D_RETURN_IF_ERROR(SetMember(tx, p->id, u->id, *role));
    auto owners = OwnerCount(tx, p->id);
    if (!owners.ok()) return owners.status();
    if (*owners == 0) return absl::FailedPreconditionError("a project keeps at least one owner");
    C2D_RETURN_IF_ERROR(Audit(tx, {c.who.user_id,
                                   c.who.token_id,
                                   p->id,
                                   "member.set",
                                   u->id,
                                   c.request_id,
                                   c.req.remote_addr,
                                   {{"role", role_name}}}));
    return u;
  });
  if (!user.ok()) return FromStatus(user.status());
  return Json(201, {{"user_id", user->id}, {"email", user->email}, {"role", role_name}});
}

httpd::Response Gateway::RemoveMember(Call& c) {
  auto p = Authorize(c, c.req.params["id"], Role::kAdmin);
  if (!p.ok()) return FromStatus(p.status());
  const std::string user = c.req.params["user"];
  absl::Status s = pool_.Transact("remove member", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(gateway::RemoveMember(tx, p->id, user));
    return Audit(tx, {c.who.user_id, c.who.token_id, p->id, "member.remove", user, c.request_id,
                      c.req.remote_addr, json::object()});
  });
  if (!s.ok()) return FromStatus(s);
  httpd::Response r;
  r.status = 204;
  return r;
}

// ---- services

json Gateway::ServiceJson(const Service& s) const {
  const v1::HealthCheck& h = s.health_check;
  json j = {
      {"id", s.id},
      {"project_id", s.project_id},
      {"name", s.name},
      {"type", s.type == v1::SERVICE_TYPE_WORKER ? "worker" : "web"},
      {"revision", s.revision},
      {"source",
       {{"repo_url", s.source.repo_url()},
        {"branch", s.source.branch()},
        {"root_dir", s.source.root_dir()}}},
      {"auto_deploy", s.auto_deploy},
      {"build",
       {{"strategy", s.build.strategy() == v1::BUILD_STRATEGY_DOCKERFILE ? "dockerfile" : "auto"},
        {"dockerfile_path", s.build.dockerfile_path()},
        {"build_command", s.build.build_command()}}},
      {"run",
       {{"start_command", s.run.start_command()},
        {"port", s.run.port() > 0 ? json(s.run.port()) : json(nullptr)},
        {"instance_count", s.run.instance_count()},
        {"memory_mb", s.run.memory_mb()},
        {"cpu_millis", s.run.cpu_millis()}}},
      {"created_at", Time(absl::ToUnixMicros(s.created_at))},
      {"updated_at", Time(absl::ToUnixMicros(s.updated_at))}};
  if (s.type == v1::SERVICE_TYPE_WEB) {
    j["health_check"] = {{"path", h.path()},
                         {"port", h.port() > 0 ? json(h.port()) : json(nullptr)},
                         {"interval_s", h.interval_s()},
                         {"timeout_s", h.timeout_s()},
                         {"healthy_threshold", h.healthy_threshold()},
                         {"unhealthy_threshold", h.unhealthy_threshold()},
                         {"start_period_s", h.start_period_s()}};
    j["url"] = config_.AppUrl(s.name, s.project_name);
  } else {
    j["health_check"] = nullptr;
    j["url"] = nullptr;
  }
  return j;
}

absl::Status Gateway::ApplyServiceBody(const json& body, Service* s, bool create) {
  C2D_RETURN_IF_ERROR(GetString(body, "name", "", &s->name, 64));
  if (!rpc::ValidName(s->name)) return FieldError("name", rpc::kNameRule);
  if (body.contains("type") && !body["type"].is_null()) {
    std::string type;
    C2D_RETURN_IF_ERROR(GetString(body, "type", "", &type, 16));
    if (type != "web" && type != "worker") return FieldError("type", "must be web or worker");
    const v1::ServiceType t = type == "web" ? v1::SERVICE_TYPE_WEB : v1::SERVICE_TYPE_WORKER;
    if (!create && t != s->type) return FieldError("type", "cannot change; create a new service");
    s->type = t;
  }
  C2D_ASSIGN_OR_RETURN(json source, SubObject(body, "source", {"repo_url", "branch", "root_dir"}));
  std::string text = s->source.repo_url();
  C2D_RETURN_IF_ERROR(GetString(source, "repo_url", "source.", &text, 2048));
  s->source.set_repo_url(text);
  text = s->source.branch();
  C2D_RETURN_IF_ERROR(GetString(source, "branch", "source.", &text, 255));
  s->source.set_branch(text);
  text = s->source.root_dir();
  C2D_RETURN_IF_ERROR(GetString(source, "root_dir", "source.", &text, 1024));
  s->source.set_root_dir(text);
  if (s->source.repo_url().empty()) return FieldError("source.repo_url", "is required");
  C2D_RETURN_IF_ERROR(rpc::ValidateSource(s->source, "source."));
  C2D_RETURN_IF_ERROR(GetBool(body, "auto_deploy", "", &s->auto_deploy));

  C2D_ASSIGN_OR_RETURN(json build,
                       SubObject(body, "build", {"strategy", "dockerfile_path", "build_command"}));
  if (build.contains("strategy") && !build["strategy"].is_null()) {
    std::string strategy;
    C2D_RETURN_IF_ERROR(GetString(build, "strategy", "build.", &strategy, 16));
    if (strategy != "auto" && strategy != "dockerfile") {
      return FieldError("build.strategy", "must be auto or dockerfile");
    }
    s->build.set_strategy(strategy == "auto" ? v1::BUILD_STRATEGY_AUTO
                                             : v1::BUILD_STRATEGY_DOCKERFILE);
  }
  text = s->build.dockerfile_path();
  C2D_RETURN_IF_ERROR(GetString(build, "dockerfile_path", "build.", &text, 1024));
  s->build.set_dockerfile_path(text);
  text = s->build.build_command();
  C2D_RETURN_IF_ERROR(GetString(build, "build_command", "build.", &text, 4096));
  s->build.set_build_command(text);
  C2D_RETURN_IF_ERROR(rpc::ValidateBuildSettings(s->build, "build."));

  C2D_ASSIGN_OR_RETURN(
      json run, SubObject(body, "run",
                          {"start_command", "port", "instance_count", "memory_mb", "cpu_millis"}));
  text = s->run.start_command();
  C2D_RETURN_IF_ERROR(GetString(run, "start_command", "run.", &text, 4096));
  s->run.set_start_command(text);
  int n = s->run.port();
  C2D_RETURN_IF_ERROR(GetInt(run, "port", "run.", 1, 65535, &n));
  s->run.set_port(s->type == v1::SERVICE_TYPE_WORKER ? 0 : (n > 0 ? n : 8080));
  n = s->run.instance_count();
  C2D_RETURN_IF_ERROR(GetInt(run, "instance_count", "run.", 1, 20, &n));
  s->run.set_instance_count(n);
  n = s->run.memory_mb();
  C2D_RETURN_IF_ERROR(GetInt(run, "memory_mb", "run.", 64, 65536, &n));
  s->run.set_memory_mb(n);
  n = s->run.cpu_millis();
  C2D_RETURN_IF_ERROR(GetInt(run, "cpu_millis", "run.", 50, 16000, &n));
  s->run.set_cpu_millis(n);

  C2D_ASSIGN_OR_RETURN(json hc,
                       SubObject(body, "health_check",
                                 {"path", "port", "interval_s", "timeout_s", "healthy_threshold",
                                  "unhealthy_threshold", "start_period_s"}));
  v1::HealthCheck& h = s->health_check;
  text = h.path();
  C2D_RETURN_IF_ERROR(GetString(hc, "path", "health_check.", &text, 1024));
  h.set_path(text);
  struct {
    const char* key;
    int lo, hi;
    int (v1::HealthCheck::*get)() const;
    void (v1::HealthCheck::*set)(int32_t);
  } ints[] = {
      {"port", 1, 65535, &v1::HealthCheck::port, &v1::HealthCheck::set_port},
      {"interval_s", 1, 300, &v1::HealthCheck::interval_s, &v1::HealthCheck::set_interval_s},
      {"timeout_s", 1, 60, &v1::HealthCheck::timeout_s, &v1::HealthCheck::set_timeout_s},
      {"healthy_threshold", 1, 10, &v1::HealthCheck::healthy_threshold,
       &v1::HealthCheck::set_healthy_threshold},
      {"unhealthy_threshold", 1, 10, &v1::HealthCheck::unhealthy_threshold,
       &v1::HealthCheck::set_unhealthy_threshold},
      {"start_period_s", 0, 3600, &v1::HealthCheck::start_period_s,
       &v1::HealthCheck::set_start_period_s}};
  for (const auto& f : ints) {
    n = (h.*f.get)();
    C2D_RETURN_IF_ERROR(GetInt(hc, f.key, "health_check.", f.lo, f.hi, &n));
    (h.*f.set)(n);
  }
  if (s->type == v1::SERVICE_TYPE_WORKER) h.set_port(0);
  // The whole release configuration, as the deployer will check it.
  v1::ServiceSpec spec;
  spec.set_service_id(s->id);
  spec.set_project_id(s->project_id);
  spec.set_project_name(s->project_name);
  spec.set_service_name(s->name);
  spec.set_type(s->type);
  *spec.mutable_run() = s->run;
  if (s->type == v1::SERVICE_TYPE_WEB) *spec.mutable_health_check() = h;
  return rpc::ValidateServiceSpec(spec);
}

absl::StatusOr<v1::ServiceSpec> Gateway::Spec(const Service& s) {
  auto env = pool_.Transact("env", [&](pg::Tx& tx) { return ListEnv(tx, s.id); });
  if (!env.ok()) return env.status();
  v1::ServiceSpec spec;
  spec.set_service_id(s.id);
  spec.set_project_id(s.project_id);
  spec.set_project_name(s.project_name);
  spec.set_service_name(s.name);
  spec.set_type(s.type);
  spec.set_revision(s.revision);
  *spec.mutable_run() = s.run;
  if (s.type == v1::SERVICE_TYPE_WEB) *spec.mutable_health_check() = s.health_check;
  for (v1::EnvVar& v : *env) *spec.add_env() = std::move(v);
  return spec;
}

httpd::Response Gateway::CreateService(Call& c) {
  auto p = Authorize(c, c.req.params["id"], Role::kDeveloper);
  if (!p.ok()) return FromStatus(p.status());
  auto body = ParseObject(
      c.req.body, {"name", "type", "source", "auto_deploy", "build", "run", "health_check", "env"});
  if (!body.ok()) return FromStatus(body.status());
  Service s;
  s.id = ids::New("svc");
  s.project_id = p->id;
  s.project_name = p->name;
  s.source.set_branch("main");
  s.build.set_strategy(v1::BUILD_STRATEGY_AUTO);
  s.build.set_dockerfile_path("Dockerfile");
  s.run.set_instance_count(1);
  s.run.set_memory_mb(512);
  s.run.set_cpu_millis(500);
  s.health_check.set_path("/health");
  s.health_check.set_interval_s(10);
  s.health_check.set_timeout_s(2);
  s.health_check.set_healthy_threshold(1);
  s.health_check.set_unhealthy_threshold(3);
  s.health_check.set_start_period_s(30);
  if (!body->contains("name")) return FromStatus(FieldError("name", "is required"));
  if (auto st = ApplyServiceBody(*body, &s, /*create=*/true); !st.ok()) return FromStatus(st);
  absl::Status st = pool_.Transact("create service", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(InsertService(tx, s));
    if (body->contains("env")) C2D_RETURN_IF_ERROR(ApplyEnv(tx, s.id, (*body)["env"], true));
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      p->id,
                      "service.create",
                      s.id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"name", s.name}}});
  });
  if (absl::IsAlreadyExists(st)) {
    return Error(409, "already_exists",
                 absl::StrCat("project ", p->name, " already has a service named ", s.name),
                 "name");
  }
  if (!st.ok()) return FromStatus(st);
  auto stored =
      pool_.Transact("service", [&](pg::Tx& tx) { return gateway::GetService(tx, s.id); });
  if (!stored.ok()) return FromStatus(stored.status());
  return Json(201, ServiceJson(*stored));
}

httpd::Response Gateway::ListServices(Call& c) {
  auto size = PageSize(c.req);
  if (!size.ok()) return FromStatus(size.status());
  auto p = Authorize(c, c.req.params["id"], Role::kViewer);
  if (!p.ok()) return FromStatus(p.status());
  auto list = pool_.Transact("list services", [&](pg::Tx& tx) {
    return gateway::ListServices(tx, p->id, *size + 1, c.req.Query("page_token"));
  });
  if (!list.ok()) return FromStatus(list.status());
  json items = json::array();
  for (int i = 0; i < static_cast<int>(list->size()) && i < *size; ++i) {
    items.push_back(ServiceJson((*list)[i]));
  }
  const bool more = static_cast<int>(list->size()) > *size;
  return Json(200, {{"services", items},
                    {"next_page_token", more ? json((*list)[*size - 1].name) : json(nullptr)}});
}

httpd::Response Gateway::GetService(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  return Json(200, ServiceJson(sp->first));
}

httpd::Response Gateway::PatchService(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(
      c.req.body, {"name", "type", "source", "auto_deploy", "build", "run", "health_check"});
  if (!body.ok()) return FromStatus(body.status());
  Service s = sp->first;
  if (auto st = ApplyServiceBody(*body, &s, /*create=*/false); !st.ok()) return FromStatus(st);
  absl::Status st = pool_.Transact("update service", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(UpdateService(tx, s));
    return Audit(tx, {c.who.user_id, c.who.token_id, s.project_id, "service.update", s.id,
                      c.request_id, c.req.remote_addr, *body});
  });
  if (absl::IsAlreadyExists(st)) {
    return Error(409, "already_exists",
                 absl::StrCat("the project already has a service named ", s.name), "name");
  }
  if (!st.ok()) return FromStatus(st);
  auto stored =
      pool_.Transact("service", [&](pg::Tx& tx) { return gateway::GetService(tx, s.id); });
  if (!stored.ok()) return FromStatus(stored.status());
  return Json(200, ServiceJson(*stored));
}

httpd::Response Gateway::DeleteService(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kAdmin);
  if (!sp.ok()) return FromStatus(sp.status());
  const Service& s = sp->first;
  // Its instances stop (asynchronously) before the row goes.
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::StopServiceRequest stop;
  stop.set_service_id(s.id);
  stop.set_delete_volumes(true);
  stop.set_reason("service deleted");
  v1::StopServiceResponse stopped;
  if (auto g = deployer_->StopService(&ctx, stop, &stopped); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  absl::Status st = pool_.Transact("delete service", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(gateway::DeleteService(tx, s.id));
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      s.project_id,
                      "service.delete",
                      s.id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"name", s.name}}});
  });
  if (!st.ok()) return FromStatus(st);
  httpd::Response r;
  r.status = 204;
  return r;
}

// ---- env vars

absl::Status Gateway::ApplyEnv(pg::Tx& tx, const std::string& service_id, const json& env,
                               bool replace) {
  static const std::regex kKey("^[A-Za-z_][A-Za-z0-9_]*$");
  if (!env.is_object()) return FieldError("env", "must be an object of KEY: value");
  if (env.size() > 500) return FieldError("env", "at most 500 variables");
  // Validate everything before writing anything.
  struct Change {
    std::string key;
    std::optional<std::string> value;  // nullopt = delete
    bool secret = true;
  };
  std::vector<Change> changes;
  for (const auto& [key, v] : env.items()) {
    const std::string field = "env." + key.substr(0, 64);
    if (key.size() > 255 || !std::regex_match(key, kKey)) {
      return FieldError(field, "is not a valid variable name (^[A-Za-z_][A-Za-z0-9_]*$)");
    }
    if (key == "PORT") return FieldError(field, "PORT is set by c2d");
    Change ch{key, std::nullopt, true};
    if (v.is_string()) {
      ch.value = v.get<std::string>();
    } else if (v.is_object()) {
      for (const auto& [k, unused] : v.items()) {
        if (k != "value" && k != "secret") return FieldError(field + "." + k, "unknown field");
      }
      if (!v.contains("value") || !v["value"].is_string()) {
        return FieldError(field + ".value", "must be a string");
      }
      ch.value = v["value"].get<std::string>();
      if (v.contains("secret")) {
        if (!v["secret"].is_boolean())
          return FieldError(field + ".secret", "must be true or false");
        ch.secret = v["secret"].get<bool>();
      }
    } else if (v.is_null() && !replace) {
      // PATCH: null removes the variable.
    } else {
      return FieldError(field, "must be a string, {\"value\", \"secret\"} or (PATCH) null");
    }
    if (ch.value && ch.value->size() > 32 * 1024) return FieldError(field, "is longer than 32 KiB");
    changes.push_back(std::move(ch));
  }
  if (replace) C2D_RETURN_IF_ERROR(DeleteAllEnv(tx, service_id));
  for (const Change& ch : changes) {
    if (!ch.value) {
      C2D_RETURN_IF_ERROR(gateway::DeleteEnv(tx, service_id, ch.key).status());
      continue;
    }
    auto sealed = config_.master_keys->Seal(*ch.value, crypto::EnvVarAad(ch.key));
    if (!sealed.ok()) return sealed.status();
    v1::EnvVar var;
    var.set_key(ch.key);
    var.set_secret(ch.secret);
    var.mutable_value()->set_key_id(sealed->key_id);
    var.mutable_value()->set_wrapped_data_key(sealed->wrapped_key);
    var.mutable_value()->set_nonce(sealed->nonce);
    var.mutable_value()->set_ciphertext(sealed->ciphertext);
    C2D_RETURN_IF_ERROR(gateway::PutEnv(tx, service_id, var));
  }
  return BumpRevision(tx, service_id);
}

httpd::Response Gateway::GetEnv(Call& c) {
  const bool reveal = c.req.Query("reveal") == "true";
  auto sp = AuthorizeService(c, c.req.params["id"], reveal ? Role::kDeveloper : Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  auto env = pool_.Transact("env", [&](pg::Tx& tx) { return ListEnv(tx, sp->first.id); });
  if (!env.ok()) return FromStatus(env.status());
  json items = json::array();
  for (const v1::EnvVar& v : *env) {
    json item = {{"key", v.key()}, {"secret", v.secret()}, {"value", nullptr}};
    if (!v.secret() || reveal) {
      crypto::Sealed sealed{v.value().key_id(), v.value().wrapped_data_key(), v.value().nonce(),
                            v.value().ciphertext()};
      auto plain = config_.master_keys->Open(sealed, crypto::EnvVarAad(v.key()));
      if (!plain.ok()) return FromStatus(plain.status());
      item["value"] = *plain;
    }
    items.push_back(std::move(item));
  }
  if (reveal) {
    json keys = json::array();
    for (const v1::EnvVar& v : *env) keys.push_back(v.key());
    if (auto s = AuditMutation(c, sp->second.id, "env.reveal", sp->first.id, {{"keys", keys}});
        !s.ok()) {
      return FromStatus(s);
    }
  }
  return Json(200, {{"env", items}});
}

httpd::Response Gateway::PutEnv(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(c.req.body, {"env"});
  if (!body.ok()) return FromStatus(body.status());
  if (!body->contains("env")) return FromStatus(FieldError("env", "is required"));
  const bool replace = c.req.method == "PUT";
  absl::Status st = pool_.Transact("env", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(ApplyEnv(tx, sp->first.id, (*body)["env"], replace));
    json keys = json::array();
    for (const auto& [k, v] : (*body)["env"].items()) keys.push_back(k);  // never the values
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      sp->second.id,
                      "env.update",
                      sp->first.id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"keys", keys}, {"replace", replace}}});
  });
  if (!st.ok()) return FromStatus(st);
  c.req.method = "GET";
  c.req.query.clear();
  return GetEnv(c);
}

httpd::Response Gateway::PatchEnv(Call& c) { return PutEnv(c); }

httpd::Response Gateway::DeleteEnv(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  const std::string key = c.req.params["key"];
  absl::Status st = pool_.Transact("env", [&](pg::Tx& tx) -> absl::Status {
    auto deleted = gateway::DeleteEnv(tx, sp->first.id, key);
    if (!deleted.ok()) return deleted.status();
    if (!*deleted) {
      return absl::NotFoundError(absl::StrCat("service ", sp->first.name, " has no env var ", key));
    }
    C2D_RETURN_IF_ERROR(BumpRevision(tx, sp->first.id));
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      sp->second.id,
                      "env.delete",
                      sp->first.id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"key", key}}});
  });
  if (!st.ok()) return FromStatus(st);
  httpd::Response r;
  r.status = 204;
  return r;
}

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
  auto spec = Spec(s);
  if (!spec.ok()) return FromStatus(spec.status());
  v1::StartBuildRequest start;
  start.set_service_id(s.id);
  *start.mutable_source() = s.source;
  start.mutable_source()->set_commit(commit);
  *start.mutable_settings() = s.build;
  *start.mutable_spec() = *spec;
  start.set_trigger(v1::BUILD_TRIGGER_API);
  start.set_requested_by(c.who.user_id);
  grpc::ClientContext ctx;
  Context(ctx, c);
  // Resolving a branch head can take a git round trip.
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::max(config_.rpc_timeout, std::chrono::milliseconds(60'000)));
  v1::StartBuildResponse started;
  if (auto g = builder_->StartBuild(&ctx, start, &started); !g.ok()) {
    absl::Status st = rpc::FromGrpc(g);
    if (absl::IsInvalidArgument(st) && absl::StartsWith(st.message(), "source.commit")) {
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
  auto size = PageSize(c.req);
  if (!size.ok()) return FromStatus(size.status());
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::ListDeploymentsRequest req;
  req.set_service_id(sp->first.id);
  req.mutable_page()->set_page_size(*size);
  req.mutable_page()->set_page_token(c.req.Query("page_token"));
  v1::ListDeploymentsResponse resp;
  if (auto g = deployer_->ListDeployments(&ctx, req, &resp); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  json items = json::array();
  for (const v1::Deployment& d : resp.deployments()) items.push_back(DeploymentJson(d));
  return Json(200,
              {{"deployments", items},
               {"next_page_token",
                resp.next_page_token().empty() ? json(nullptr) : json(resp.next_page_token())}});
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
  auto body = ParseObject(c.req.body, {}, /*empty_ok=*/true);
  if (!body.ok()) return FromStatus(body.status());
  if ((*target)["deployment"].is_null()) {
    return Error(
        409, "failed_precondition",
        absl::StrCat(c.req.params["id"], " never became a release; nothing to roll back to"));
  }
  auto sp = AuthorizeService(c, service_id, Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::RollbackRequest req;
  req.set_service_id(service_id);
  req.set_to_deployment_id((*target)["deployment"]["id"].get<std::string>());
  req.set_request_id(c.request_id);
  v1::Deployment d;
  if (auto g = deployer_->Rollback(&ctx, req, &d); !g.ok()) return FromStatus(rpc::FromGrpc(g));
  if (auto a = AuditMutation(c, sp->second.id, "deployment.rollback", d.id(),
                             {{"to", req.to_deployment_id()}});
      !a.ok()) {
    return FromStatus(a);
  }
  auto view = DeploymentView(c, d.id(), &service_id);
  if (!view.ok()) return FromStatus(view.status());
  return Json(202, *view);
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

// ---- live logs: Server-Sent Events, or WebSocket on the same path

namespace {

// Where a log stream's events go.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // false once the client has gone.
  virtual bool Send(const std::string& event, const std::string& id, const json& data) = 0;
  virtual bool Closed() const = 0;
};

class SseSink final : public EventSink {
 public:
  explicit SseSink(httpd::StreamWriter& w) : w_(w) {}
  bool Send(const std::string& event, const std::string& id, const json& data) override {
    std::string frame;
    if (!id.empty()) absl::StrAppend(&frame, "id: ", id, "\n");
    absl::StrAppend(&frame, "event: ", event,
                    "\ndata: ", data.dump(-1, ' ', false, json::error_handler_t::replace), "\n\n");
    return w_.Write(frame);
  }
  bool Closed() const override { return w_.Closed(); }

 private:
  httpd::StreamWriter& w_;
};

class WebSocketSink final : public EventSink {
 public:
  explicit WebSocketSink(httpd::WebSocket& ws) : ws_(ws) {}
  bool Send(const std::string& event, const std::string& id, const json& data) override {
    json m = {{"event", event}, {"data", data}};
    if (!id.empty()) m["id"] = id;
    return ws_.Send(m.dump(-1, ' ', false, json::error_handler_t::replace));
  }
  bool Closed() const override { return ws_.Closed(); }

 private:
  httpd::WebSocket& ws_;
};

// A streaming response that runs `body` against either transport.
httpd::Response StreamResponse(std::function<void(EventSink&)> body) {
  httpd::Response r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", "text/event-stream");
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.stream = [body](httpd::StreamWriter& w) {
    SseSink sink(w);
    body(sink);
  };
  r.websocket = [body](httpd::WebSocket& ws) {
    WebSocketSink sink(ws);
    body(sink);
  };
  return r;
}

// Cancels a gRPC stream once the client of the HTTP stream has gone.
class CancelWhenClosed {
 public:
  CancelWhenClosed(EventSink& sink, grpc::ClientContext& ctx)
      : thread_([this, &sink, &ctx] {
          absl::MutexLock lock(&mu_);
          while (!done_) {
            mu_.AwaitWithTimeout(absl::Condition(&done_), absl::Milliseconds(250));
            if (!done_ && sink.Closed()) {
              ctx.TryCancel();
              return;
            }
          }
        }) {}
  ~CancelWhenClosed() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    thread_.join();
  }

 private:
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Last-Event-ID (or ?since=): "<prefix><seq>" -> seq; 0 when absent or of
// another prefix.
int64_t ResumeAfter(const httpd::Request& req, char prefix) {
  std::string id = req.Header("last-event-id");
  if (id.empty()) id = req.Query("since");
  int64_t n = 0;
  if (id.size() > 1 && id[0] == prefix && absl::SimpleAtoi(id.substr(1), &n) && n > 0) return n;
  if (prefix == 's' && absl::SimpleAtoi(id, &n) && n > 0) return n;
  return 0;
}

bool DeploymentEnded(const std::string& kind) {
  return kind == "deployment.live" || kind == "deployment.failed" ||
         kind == "deployment.superseded" || kind == "deployment.rolled_back" ||
         kind == "deployment.stopped";
}

}  // namespace

httpd::Response Gateway::DeploymentLogs(Call& c) {
  std::string service_id;
  auto view = DeploymentView(c, c.req.params["id"], &service_id);
  if (!view.ok()) return FromStatus(view.status());
  std::string build_id =
      (*view)["build"].is_null() ? "" : (*view)["build"]["id"].get<std::string>();
  std::string deployment_id =
      (*view)["deployment"].is_null() ? "" : (*view)["deployment"]["id"].get<std::string>();
  // Resumption: build lines are "b<seq>", deployment events "d<seq>".
  int64_t after_line = ResumeAfter(c.req, 'b'), after_event = ResumeAfter(c.req, 'd');
  if (after_event > 0) build_id.clear();  // the build part was seen whole
  const std::string request_id = c.request_id;
  return StreamResponse([this, build_id, deployment_id, after_line, after_event,
                         request_id](EventSink& sink) mutable {
    std::string final_state;
    if (!build_id.empty()) {
      grpc::ClientContext ctx;
      ctx.AddMetadata(rpc::kRequestIdKey, request_id);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(2));
      CancelWhenClosed cancel(sink, ctx);
      v1::StreamBuildLogsRequest req;
      req.set_build_id(build_id);
      req.set_after_seq(after_line);
      req.set_follow(true);
      auto reader = builder_->StreamBuildLogs(&ctx, req);
      v1::LogLine line;
      while (reader->Read(&line)) {
        if (!sink.Send("build", absl::StrCat("b", line.seq()), LogJson(line))) return;
      }
      (void)reader->Finish();
      if (sink.Closed()) return;
      // The build is final: did it start a release? (Give the builder a moment
      // to record it.)
      v1::Build b;
      for (int i = 0; i < 60; ++i) {
        grpc::ClientContext g;
        g.set_deadline(std::chrono::system_clock::now() + config_.rpc_timeout);
        v1::GetBuildRequest get;
        get.set_id(build_id);
        if (!builder_->GetBuild(&g, get, &b).ok()) break;
        if (b.state() != v1::BUILD_STATE_SUCCEEDED || b.skip_deploy() ||
            !b.deployment_id().empty()) {
          break;
        }
        absl::SleepFor(absl::Milliseconds(500));
      }
      deployment_id = b.deployment_id();
      final_state = EnumText<v1::BuildState>(v1::BuildState_Name(b.state()), 12);
      if (b.state() != v1::BUILD_STATE_SUCCEEDED) final_state = "build_" + final_state;
    }
    if (!deployment_id.empty()) {
      grpc::ClientContext ctx;
      ctx.AddMetadata(rpc::kRequestIdKey, request_id);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(2));
      CancelWhenClosed cancel(sink, ctx);
      v1::StreamDeploymentEventsRequest req;
      req.set_deployment_id(deployment_id);
      req.set_after_seq(after_event);
      req.set_follow(true);
      auto reader = deployer_->StreamDeploymentEvents(&ctx, req);
      v1::DeploymentEvent e;
      while (reader->Read(&e)) {
        if (!sink.Send("deploy", absl::StrCat("d", e.seq()), EventJson(e))) return;
        if (e.deployment_id() == deployment_id && DeploymentEnded(e.kind())) {
          final_state = e.kind().substr(11);
          ctx.TryCancel();
          break;
        }
      }
      (void)reader->Finish();
    }
    if (!sink.Closed()) {
      sink.Send("end", "",
                {{"state", final_state},
                 {"deployment_id", deployment_id.empty() ? json(nullptr) : json(deployment_id)}});
    }
  });
}

httpd::Response Gateway::ServiceLogs(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  int tail = 100;
  if (const std::string t = c.req.Query("tail"); !t.empty()) {
    if (!absl::SimpleAtoi(t, &tail) || tail < 0 || tail > 10000) {
      return FromStatus(FieldError("tail", "must be 0-10000"));
    }
  }
  const std::string instance = c.req.Query("instance");
  if (!instance.empty() && !ids::Valid(instance, "ins")) {
    return FromStatus(FieldError("instance", "is not an instance id"));
  }
  const bool follow = c.req.Query("follow") != "false";
  const int64_t after = ResumeAfter(c.req, 's');
  const std::string service_id = sp->first.id, request_id = c.request_id;
  return StreamResponse([=, this](EventSink& sink) {
    grpc::ClientContext ctx;
    ctx.AddMetadata(rpc::kRequestIdKey, request_id);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(24));
    CancelWhenClosed cancel(sink, ctx);
    v1::StreamRuntimeLogsRequest req;
    req.set_service_id(service_id);
    req.set_instance_id(instance);
    req.set_after_seq(after);
    req.set_tail_lines(tail == 0 && after == 0 ? 1 : tail);
    req.set_follow(follow);
    auto reader = deployer_->StreamRuntimeLogs(&ctx, req);
    v1::LogLine line;
    while (reader->Read(&line)) {
      if (!sink.Send("log", std::to_string(line.seq()), LogJson(line))) return;
    }
    (void)reader->Finish();
    if (!sink.Closed()) sink.Send("end", "", json::object());
  });
}

// ---- webhooks (DESIGN point 21)

namespace {

std::string WebhookAad(const std::string& hook_id) { return "c2d/webhook/" + hook_id; }

json WebhookJson(const Webhook& w) {
  return {{"id", w.id},
          {"provider", w.provider},
          {"url", absl::StrCat("/v1/webhooks/", w.provider, "/", w.id)}};
}

}  // namespace

httpd::Response Gateway::CreateWebhook(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kAdmin);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(c.req.body, {"provider", "secret"});
  if (!body.ok()) return FromStatus(body.status());
  std::string provider, secret;
  if (auto s = GetString(*body, "provider", "", &provider, 16); !s.ok()) return FromStatus(s);
  if (provider != "github" && provider != "gitlab") {
    return FromStatus(FieldError("provider", "must be github or gitlab"));
  }
  if (auto s = GetString(*body, "secret", "", &secret, 255); !s.ok()) return FromStatus(s);
  if (body->contains("secret") && secret.size() < 16) {
    return FromStatus(FieldError("secret", "must be at least 16 characters"));
  }
  if (secret.empty()) secret = http::Base64Url(crypto::RandomBytes(32));
  Webhook w{ids::New("hook"), sp->first.id, provider, {}};
  auto sealed = config_.master_keys->Seal(secret, WebhookAad(w.id));
  if (!sealed.ok()) return FromStatus(sealed.status());
  w.secret = std::move(*sealed);
  absl::Status st = pool_.Transact("create webhook", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(InsertWebhook(tx, w));
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      sp->second.id,
                      "webhook.create",
                      w.id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"provider", provider}}});
  });
  if (absl::IsAlreadyExists(st)) {
    return Error(409, "already_exists",
                 absl::StrCat("service ", sp->first.name, " already has a ", provider, " webhook"),
                 "provider");
  }
  if (!st.ok()) return FromStatus(st);
  json out = WebhookJson(w);
  out["secret"] = secret;  // shown once
  return Json(201, out);
}

httpd::Response Gateway::ListWebhooks(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  auto hooks = pool_.Transact("webhooks",
                              [&](pg::Tx& tx) { return gateway::ListWebhooks(tx, sp->first.id); });
  if (!hooks.ok()) return FromStatus(hooks.status());
  json items = json::array();
  for (const Webhook& w : *hooks) items.push_back(WebhookJson(w));
  return Json(200, {{"webhooks", items}});
}

httpd::Response Gateway::ListDeliveries(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  auto size = PageSize(c.req);
  if (!size.ok()) return FromStatus(size.status());
  auto list = pool_.Transact(
      "deliveries", [&](pg::Tx& tx) { return gateway::ListDeliveries(tx, sp->first.id, *size); });
  if (!list.ok()) return FromStatus(list.status());
  json items = json::array();
  for (const Delivery& d : *list) {
    items.push_back({{"id", d.id},
                     {"webhook_id", d.webhook_id},
                     {"provider", d.provider},
                     {"delivery_id", d.delivery_id},
                     {"event", d.event},
                     {"ref", d.ref.empty() ? json(nullptr) : json(d.ref)},
                     {"commit", d.commit_sha.empty() ? json(nullptr) : json(d.commit_sha)},
                     {"outcome", d.outcome},
                     {"build_id", d.build_id.empty() ? json(nullptr) : json(d.build_id)},
                     {"received_at", Time(absl::ToUnixMicros(d.received_at))}});
  }
  return Json(200, {{"deliveries", items}});
}

bool Gateway::TakeToken(const std::string& hook) {
  constexpr double kCapacity = 20, kPerSecond = 2;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&bucket_mu_);
  if (buckets_.size() > 10000) buckets_.clear();
  auto [it, fresh] = buckets_.try_emplace(hook, Bucket{kCapacity, now});
  Bucket& b = it->second;
  b.tokens = std::min(kCapacity, b.tokens + absl::ToDoubleSeconds(now - b.at) * kPerSecond);
  b.at = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

httpd::Response Gateway::ReceiveWebhook(httpd::Request& req) {
  const std::string provider = req.params["provider"], hook_id = req.params["hook"];
  const std::string request_id = req.Header("x-request-id");
  log::Scope scope(
      nlohmann::json{{"request_id", request_id}, {"webhook_id", hook_id.substr(0, 40)}});
  if ((provider != "github" && provider != "gitlab") || !ids::Valid(hook_id, "hook")) {
    return Error(404, "not_found", "no such webhook");
  }
  auto hook =
      pool_.Transact("webhook", [&](pg::Tx& tx) { return GetWebhook(tx, hook_id, provider); });
  if (absl::IsNotFound(hook.status())) return Error(404, "not_found", "no such webhook");
  if (!hook.ok()) return FromStatus(hook.status());
  if (!TakeToken(hook_id)) {
    httpd::Response r =
        Error(429, "rate_limited", "too many deliveries for this webhook; retry later");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  auto secret = config_.master_keys->Open(hook->secret, WebhookAad(hook_id));
  if (!secret.ok()) return FromStatus(secret.status());
  std::string event, delivery_id;
  if (provider == "github") {
    const std::string expected = "sha256=" + crypto::HmacSha256Hex(*secret, req.body);
    if (!crypto::ConstantTimeEquals(req.Header("x-hub-signature-256"), expected)) {
      return Error(401, "unauthenticated", "X-Hub-Signature-256 does not match the body");
    }
    event = req.Header("x-github-event");
    delivery_id = req.Header("x-github-delivery");
  } else {
    if (!crypto::ConstantTimeEquals(req.Header("x-gitlab-token"), *secret)) {
      return Error(401, "unauthenticated", "X-Gitlab-Token does not match");
    }
    event = req.Header("x-gitlab-event");
    delivery_id = req.Header("x-gitlab-event-uuid");
  }
  if (delivery_id.empty() || delivery_id.size() > 200) {
    return Error(400, "invalid_argument", "the delivery carries no delivery id header");
  }
  auto service = pool_.Transact(
      "service", [&](pg::Tx& tx) { return gateway::GetService(tx, hook->service_id); });
  if (!service.ok()) return FromStatus(service.status());
  Delivery d{ids::New("whd"), hook_id, provider, delivery_id, event.substr(0, 100), "", "",
             "ignored",       "",      {}};
  std::string why;
  if (event == "push" || event == "Push Hook") {
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object())
      return Error(400, "invalid_argument", "the push payload is not a JSON object");
    d.ref = body.value("ref", "");
    std::string after = body.value("after", "");
    if (provider == "gitlab" && body.contains("checkout_sha") && body["checkout_sha"].is_string()) {
      after = body["checkout_sha"].get<std::string>();
    }
    if (rpc::IsCommitSha(after) && after.find_first_not_of('0') != std::string::npos)
      d.commit_sha = after;
    if (d.ref != "refs/heads/" + service->source.branch()) {
      why = absl::StrCat("a push to ", d.ref, ", not to ", service->source.branch());
    } else if (!service->auto_deploy) {
      why = "auto_deploy is off";
    } else if (d.commit_sha.empty()) {
      why = "no commit to build (a deleted branch?)";
    } else {
      d.outcome = "accepted";
    }
  } else {
    why = absl::StrCat("event ", event.empty() ? "(none)" : event, " is not a push");
  }
  auto fresh = pool_.Transact("delivery", [&](pg::Tx& tx) { return InsertDelivery(tx, d); });
  if (!fresh.ok()) return FromStatus(fresh.status());
  if (!*fresh) {
    // A redelivery: answered, never built twice.
    return Json(200, {{"status", "duplicate"}, {"delivery_id", delivery_id}});
  }
  if (d.outcome != "accepted") {
    log::Info("webhook delivery ignored", {{"reason", why}});
    httpd::Response r;
    r.status = 204;
    return r;
  }
  auto spec = Spec(*service);
  if (!spec.ok()) return FromStatus(spec.status());
  v1::StartBuildRequest start;
  start.set_service_id(service->id);
  *start.mutable_source() = service->source;
  start.mutable_source()->set_commit(d.commit_sha);
  *start.mutable_settings() = service->build;
  *start.mutable_spec() = *spec;
  start.set_trigger(v1::BUILD_TRIGGER_WEBHOOK);
  start.set_requested_by(hook_id);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + config_.rpc_timeout);
  ctx.AddMetadata(rpc::kRequestIdKey, request_id);
  v1::StartBuildResponse started;
  if (auto g = builder_->StartBuild(&ctx, start, &started); !g.ok()) {
    // Forget the delivery, so the sender's retry can start the build.
    (void)pool_.Transact("delivery", [&](pg::Tx& tx) { return DeleteDelivery(tx, d.id); });
    return FromStatus(rpc::FromGrpc(g));
  }
  absl::Status st = pool_.Transact("delivery", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(SetDeliveryBuild(tx, d.id, started.build().id()));
    return Audit(tx, {"",
                      "",
                      service->project_id,
                      "deployment.create",
                      started.build().id(),
                      request_id,
                      req.remote_addr,
                      {{"webhook", hook_id}, {"commit", d.commit_sha}, {"delivery", delivery_id}}});
  });
  if (!st.ok()) return FromStatus(st);
  return Json(202, {{"status", "accepted"}, {"build_id", started.build().id()}});
}

// ---- operations

httpd::Response Gateway::Healthz(httpd::Request&) { return Json(200, {{"status", "ok"}}); }

httpd::Response Gateway::Readyz(httpd::Request&) {
  json checks = json::object();
  bool ready = true;
  absl::Status db = pool_.Transact("ready", [](pg::Tx& tx) -> absl::Status {
    tx.work().exec("SELECT 1");
    return absl::OkStatus();
  });
  checks["postgres"] = db.ok() ? "ok" : std::string(db.message());
  ready &= db.ok();
  for (const auto& [name, channel] :
       {std::pair<std::string, grpc::Channel*>{"builder", builder_channel_.get()},
        {"deployer", deployer_channel_.get()}}) {
    const bool up =
        channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(2));
    checks[name] = up ? "ok" : "unreachable";
    ready &= up;
  }
  return Json(ready ? 200 : 503, {{"status", ready ? "ready" : "not ready"}, {"checks", checks}});
}

httpd::Response Gateway::Metrics(httpd::Request&) {
  httpd::Response r;
  r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4");
  r.body = prometheus::TextSerializer().Serialize(metrics::Registry().Collect());
  return r;
}

}  // namespace c2d::gateway
