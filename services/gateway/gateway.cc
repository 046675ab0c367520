// The REST API's wiring: routes, authentication, authorisation,
// Idempotency-Key, audit, and the operational endpoints. The routes of each
// resource live in projects.cc, services.cc, deployments.cc and webhooks.cc.
#include "services/gateway/gateway.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "libs/metrics/metrics.h"
#include "libs/rpc/server.h"
#include "prometheus/text_serializer.h"
#include "services/gateway/dashboard.h"
#include "services/gateway/openapi.h"

namespace c2d::gateway {
namespace {

constexpr absl::Duration kTokenCacheTtl = absl::Seconds(60);
// Notified (by triggers, migration 0004) when a token is revoked or expires
// early, or a user is disabled or deleted.
constexpr char kAuthChannel[] = "c2d_auth";

// 429 with Retry-After in whole seconds (at least 1).
httpd::Response TooMany(const std::string& message, absl::Duration retry_after) {
  httpd::Response r = Error(429, "rate_limited", message);
  const int64_t seconds =
      std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(retry_after, absl::Seconds(1))));
  r.headers.emplace_back("Retry-After", std::to_string(seconds));
  return r;
}

}  // namespace

Gateway::Gateway(pg::Pool& pool, const Config& config, std::shared_ptr<grpc::Channel> builder,
                 std::shared_ptr<grpc::Channel> deployer, std::shared_ptr<grpc::Channel> dbprov,
                 std::shared_ptr<grpc::Channel> certs)
    : pool_(pool),
      config_(config),
      builder_(v1::BuilderService::NewStub(builder)),
      deployer_(v1::DeployerService::NewStub(deployer)),
      dbprov_(dbprov ? v1::DatabaseService::NewStub(dbprov) : nullptr),
      certs_(certs ? v1::CertService::NewStub(certs) : nullptr),
      builder_channel_(std::move(builder)),
      deployer_channel_(std::move(deployer)),
      user_rate_(config.user_burst, config.user_rps),
      user_streams_(config.user_streams) {
  // Any change (or a reconnect, "" : notifications may have been missed)
  // empties the token cache.
  auth_listener_ = std::make_unique<pg::Listener>(pool_.options().connect, kAuthChannel,
                                                  [this](const std::string&) {
                                                    absl::MutexLock lock(&cache_mu_);
                                                    tokens_.clear();
                                                    ++auth_epoch_;
                                                  });
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
  Add("POST", "/v1/services/{id}/rollback", &Gateway::RollbackService, true);
  Add("GET", "/v1/deployments/{id}/logs", &Gateway::DeploymentLogs, false);
  Add("GET", "/v1/services/{id}/logs", &Gateway::ServiceLogs, false);
  Add("GET", "/v1/services/{id}/instances", &Gateway::ListInstances, false);
  Add("GET", "/v1/services/{id}/metrics", &Gateway::ServiceMetrics, false);
  Add("POST", "/v1/services/{id}/volumes", &Gateway::CreateVolume, true);
  Add("GET", "/v1/services/{id}/volumes", &Gateway::ListVolumes, false);
  Add("DELETE", "/v1/volumes/{id}", &Gateway::DeleteVolume, true);
  Add("POST", "/v1/services/{id}/webhooks", &Gateway::CreateWebhook, true);
  Add("GET", "/v1/services/{id}/webhooks", &Gateway::ListWebhooks, false);
  Add("GET", "/v1/services/{id}/webhook-deliveries", &Gateway::ListDeliveries, false);
  router_.Add("POST", "/v1/webhooks/{provider}/{hook}",
              [this](httpd::Request& r) { return ReceiveWebhook(r); });
  const bool databases = dbprov_ != nullptr;
  Add("POST", "/v1/projects/{id}/databases",
      databases ? &Gateway::CreateDatabase : &Gateway::NotBuilt, true);
  Add("GET", "/v1/projects/{id}/databases",
      databases ? &Gateway::ListDatabases : &Gateway::NotBuilt, false);
  Add("GET", "/v1/databases/{id}", databases ? &Gateway::GetDatabase : &Gateway::NotBuilt, false);
  Add("DELETE", "/v1/databases/{id}", databases ? &Gateway::DeleteDatabase : &Gateway::NotBuilt,
      true);
  Add("POST", "/v1/databases/{id}/links", databases ? &Gateway::CreateLink : &Gateway::NotBuilt,
      true);
  Add("GET", "/v1/databases/{id}/links", databases ? &Gateway::ListLinks : &Gateway::NotBuilt,
      false);
  Add("DELETE", "/v1/databases/{id}/links/{service}",
      databases ? &Gateway::DeleteLink : &Gateway::NotBuilt, true);
  Add("POST", "/v1/databases/{id}/backups", databases ? &Gateway::CreateBackup : &Gateway::NotBuilt,
      true);
  Add("GET", "/v1/databases/{id}/backups", databases ? &Gateway::ListBackups : &Gateway::NotBuilt,
      false);
  Add("GET", "/v1/backups/{id}", databases ? &Gateway::GetBackup : &Gateway::NotBuilt, false);
  Add("POST", "/v1/backups/{id}/restore", databases ? &Gateway::RestoreBackup : &Gateway::NotBuilt,
      true);
  Add("POST", "/v1/databases/{id}/rotate-credentials",
      databases ? &Gateway::RotateCredentials : &Gateway::NotBuilt, true);
  // Capabilities c2d does not run yet: a clear 501 rather than a 404.
  const bool domains = certs_ != nullptr;
  Add("GET", "/v1/services/{id}/domains", domains ? &Gateway::ListDomains : &Gateway::NotBuilt,
      false);
  Add("POST", "/v1/services/{id}/domains", domains ? &Gateway::CreateDomain : &Gateway::NotBuilt,
      true);
  Add("GET", "/v1/domains/{id}", domains ? &Gateway::GetDomain : &Gateway::NotBuilt, false);
  Add("DELETE", "/v1/domains/{id}", domains ? &Gateway::DeleteDomain : &Gateway::NotBuilt, true);
  router_.Add("GET", "/v1/openapi.json", [](httpd::Request&) {
    httpd::Response r;
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = OpenApiJson();
    return r;
  });
  router_.Add("GET", "/healthz", [this](httpd::Request& r) { return Healthz(r); });
  router_.Add("GET", "/readyz", [this](httpd::Request& r) { return Readyz(r); });
  router_.Add("GET", "/metrics", [this](httpd::Request& r) { return Metrics(r); });
  AddDashboardRoutes(router_);
}

void Gateway::Add(const std::string& method, const std::string& pattern, Route route,
                  bool mutation) {
  router_.Add(method, pattern, [this, route, mutation](httpd::Request& req) -> httpd::Response {
    auto who = Authenticate(req);
    if (!who.ok()) return FromStatus(who.status());
    absl::Duration retry_after;
    if (!user_rate_.Take(who->user_id, &retry_after)) {
      return TooMany(absl::StrCat("more than ", config_.user_rps,
                                  " requests per second from this user; slow down"),
                     retry_after);
    }
    Call c{req, *who, req.Header("x-request-id")};
    log::Scope scope(nlohmann::json{{"request_id", c.request_id}});
    httpd::Response r = Serve(c, route, mutation);
    // The access log (C2D_LOG_LEVEL=debug): never a body, header or query.
    if (log::Enabled(log::Level::kDebug)) {
      log::Debug("request", {{"method", req.method},
                             {"route", req.route},
                             {"status", r.status},
                             {"user_id", c.who.user_id}});
    }
    return r;
  });
}

httpd::Response Gateway::Serve(Call& c, Route route, bool mutation) {
  httpd::Request& req = c.req;
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
}

void Gateway::SyncRoutes(const Call& c, const std::string& project_id) {
  grpc::ClientContext ctx;
  Context(ctx, c.request_id);
  v1::SyncRoutesRequest req;
  req.set_project_id(project_id);
  v1::SyncRoutesResponse resp;
  if (auto g = deployer_->SyncRoutes(&ctx, req, &resp); !g.ok()) {
    log::Warn("cannot move the routes now; the reconciler will",
              {{"project_id", project_id}, {"error", g.error_message()}});
  }
}

absl::StatusOr<std::shared_ptr<void>> Gateway::StreamSlot(const Call& c) {
  auto slot = user_streams_.Acquire(c.who.user_id);
  if (slot == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("this user has ", config_.user_streams,
                     " log streams open already (C2D_USER_STREAMS); close one and retry"));
  }
  return slot;
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
  uint64_t epoch = 0;
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = tokens_.find(sha);
    if (it != tokens_.end() && it->second.until > now) return it->second.who;
    epoch = auth_epoch_;
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
  // A revocation that arrived while this read ran may concern it: not cached.
  if (auth_epoch_ != epoch) return who;
  if (tokens_.size() > 10000) tokens_.clear();  // bounded; refills on demand
  tokens_[sha] = {*who, now + kTokenCacheTtl};
  return who;
}

absl::StatusOr<Project> Gateway::Authorize(Call& c, const std::string& project_id, Role min) {
  if (!ids::Valid(project_id, "prj")) {
    return absl::NotFoundError(
        absl::StrCat("project ", project_id.substr(0, 64), " does not exist"));
  }
  auto p = pool_.Read(
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
  auto s = pool_.Read("service", [&](pg::Tx& tx) { return gateway::GetService(tx, service_id); });
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

void Gateway::Context(grpc::ClientContext& ctx, const std::string& request_id,
                      std::chrono::milliseconds timeout) const {
  ctx.set_deadline(std::chrono::system_clock::now() +
                   (timeout.count() > 0 ? timeout : config_.rpc_timeout));
  ctx.AddMetadata(rpc::kRequestIdKey, request_id);
}

httpd::Response Gateway::NotBuilt(Call& c) {
  // Another tenant's project or service is still "not found" here.
  if (absl::StartsWith(c.req.route, "/v1/projects/{id}")) {
    if (auto p = Authorize(c, c.req.params["id"], Role::kViewer); !p.ok()) {
      return FromStatus(p.status());
    }
  } else if (absl::StartsWith(c.req.route, "/v1/services/{id}")) {
    if (auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer); !sp.ok()) {
      return FromStatus(sp.status());
    }
  }
  const bool domain = absl::StrContains(c.req.route, "domains");
  return Error(501, "not_implemented",
               absl::StrCat(c.req.method, " ", c.req.path, ": this c2d runs no ",
                            domain ? "certs service (C2D_CERTS_ADDR)" : "dbprov (C2D_DBPROV_ADDR)",
                            ", so it has no ", domain ? "custom domains" : "databases"));
}

// ---- operations

httpd::Response Gateway::Healthz(httpd::Request&) { return Json(200, {{"status", "ok"}}); }

httpd::Response Gateway::Readyz(httpd::Request&) {
  json checks = json::object();
  bool ready = true;
  absl::Status db = pool_.Read("ready", [](pg::Tx& tx) -> absl::Status {
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
