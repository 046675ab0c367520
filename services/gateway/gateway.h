#pragma once

// The REST API (DESIGN §5): authenticates every request by API token,
// authorises it against the resource's project (another tenant's resources
// answer 404, never 403), validates bodies field by field, and serves
// projects, members, services, env vars, deployments (a build, then its
// release), rollbacks, instances and live logs (Server-Sent Events or
// WebSocket, log_streams.cc) by calling the builder and the deployer. Mutations are
// audited and honour Idempotency-Key. Thread-safe: handlers run on the HTTP
// server's worker threads.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/httpd/router.h"
#include "libs/httpd/server.h"
#include "libs/pg/listener.h"
#include "libs/pg/pool.h"
#include "libs/rpc/status.h"
#include "proto/c2d/v1/builder.grpc.pb.h"
#include "proto/c2d/v1/certs.grpc.pb.h"
#include "proto/c2d/v1/dbprov.grpc.pb.h"
#include "proto/c2d/v1/deployer.grpc.pb.h"
#include "services/gateway/api.h"
#include "services/gateway/async_call.h"
#include "services/gateway/config.h"
#include "services/gateway/limits.h"
#include "services/gateway/store.h"
#include "services/gateway/webhook_payload.h"

namespace c2d::gateway {

class Gateway {
 public:
  // `dbprov` null: the database routes answer 501; `certs` null: the
  // domain routes do.
  Gateway(pg::Pool& pool, const Config& config, std::shared_ptr<grpc::Channel> builder,
          std::shared_ptr<grpc::Channel> deployer, std::shared_ptr<grpc::Channel> dbprov = nullptr,
          std::shared_ptr<grpc::Channel> certs = nullptr);

  // The server's handler.
  httpd::Response Handle(httpd::Request& req);
  const httpd::Router& router() const { return router_; }

  // What a live log stream (log_streams.cc) calls. Streams end before the
  // gateway goes (the HTTP server's Shutdown waits for them).
  struct Upstreams {
    v1::BuilderService::Stub* builder;
    v1::DeployerService::Stub* deployer;
    Timers* timers;
    std::chrono::milliseconds rpc_timeout;
  };

 private:
  // Who is calling, and on which request.
  struct Call {
    httpd::Request& req;
    Principal who;
    std::string request_id;
  };
  using Route = httpd::Response (Gateway::*)(Call&);
  void Add(const std::string& method, const std::string& pattern, Route route, bool mutation);
  // Runs an authenticated route, replaying or recording its answer under
  // the request's Idempotency-Key when it is a mutation.
  httpd::Response Serve(Call& c, Route route, bool mutation);

  absl::StatusOr<Principal> Authenticate(const httpd::Request& req);
  // The caller's project, if they hold at least `min` in it; NotFound for
  // non-members (whatever the project exists), PermissionDenied below `min`.
  absl::StatusOr<Project> Authorize(Call& c, const std::string& project_id, Role min);
  // The service and the caller's project, authorised likewise.
  absl::StatusOr<std::pair<Service, Project>> AuthorizeService(Call& c,
                                                               const std::string& service_id,
                                                               Role min);
  // Asks the deployer to route the project's services under their names as
  // they are now (after a rename). Best effort: the deployer's reconciler
  // does it too, within a minute.
  void SyncRoutes(const Call& c, const std::string& project_id);
  // A per-user slot for a log stream (released with the last copy of the
  // handle), or the 429 to answer.
  absl::StatusOr<std::shared_ptr<void>> StreamSlot(const Call& c);
  absl::Status AuditMutation(Call& c, const std::string& project_id, const std::string& action,
                             const std::string& resource_id, json details = json::object());
  // A call to another service: its deadline (the configured one unless
  // `timeout` is given) and the request id.
  void Context(grpc::ClientContext& ctx, const std::string& request_id,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) const;
  void Context(grpc::ClientContext& ctx, const Call& c) const { Context(ctx, c.request_id); }

  // Routes.
  httpd::Response CreateProject(Call& c);
  httpd::Response ListProjects(Call& c);
  httpd::Response GetProject(Call& c);
  httpd::Response PatchProject(Call& c);
  httpd::Response DeleteProject(Call& c);
  httpd::Response ListMembers(Call& c);
  httpd::Response AddMember(Call& c);
  httpd::Response RemoveMember(Call& c);
  httpd::Response CreateService(Call& c);
  httpd::Response ListServices(Call& c);
  httpd::Response GetService(Call& c);
  httpd::Response PatchService(Call& c);
  httpd::Response DeleteService(Call& c);
  httpd::Response GetEnv(Call& c);
  httpd::Response PutEnv(Call& c);
  httpd::Response PatchEnv(Call& c);
  httpd::Response DeleteEnv(Call& c);
  httpd::Response CreateDeployment(Call& c);
  httpd::Response ListDeployments(Call& c);
  httpd::Response GetDeployment(Call& c);
  httpd::Response Rollback(Call& c);
  // POST /v1/services/{id}/rollback {"to"?}: the release before the live one
  // (chosen by the deployer), or `to`.
  httpd::Response RollbackService(Call& c);
  httpd::Response RollbackTo(Call& c, const Service& s, const Project& p, const std::string& to);
  httpd::Response ListInstances(Call& c);
  httpd::Response DeploymentLogs(Call& c);
  httpd::Response ServiceLogs(Call& c);
  httpd::Response CreateVolume(Call& c);
  httpd::Response ListVolumes(Call& c);
  httpd::Response DeleteVolume(Call& c);
  httpd::Response ServiceMetrics(Call& c);
  httpd::Response NotBuilt(Call& c);
  // databases.cc
  httpd::Response CreateDatabase(Call& c);
  httpd::Response ListDatabases(Call& c);
  httpd::Response GetDatabase(Call& c);
  httpd::Response DeleteDatabase(Call& c);
  httpd::Response CreateLink(Call& c);
  httpd::Response ListLinks(Call& c);
  httpd::Response DeleteLink(Call& c);
  httpd::Response CreateBackup(Call& c);
  httpd::Response RotateCredentials(Call& c);
  httpd::Response ListBackups(Call& c);
  httpd::Response GetBackup(Call& c);
  httpd::Response RestoreBackup(Call& c);
  // After a link or unlink: a new release of the service's live one with its
  // settings as they are now (the id), or null when nothing is live.
  absl::StatusOr<json> RedeployForLinks(Call& c, const Service& s);
  // The database if the caller holds at least `min` in its project;
  // NotFound otherwise, and for a deleted one unless `deleted_ok` (its
  // backups outlive it).
  absl::StatusOr<v1::Database> FindDatabase(Call& c, const std::string& id, Role min,
                                            bool deleted_ok = false);
  // GET /v1/services/{id}/<key> (viewer): a page of the service's items from
  // `stub`'s `call`, each as `items` makes it.
  template <typename Request, typename Response, typename Stub, typename Rpc, typename Items>
  httpd::Response ServicePage(Call& c, Stub& stub, Rpc call, const char* key, Items items);
  // GET /v1/databases/{id}/<key>: a page of the database's links or backups
  // from dbprov's `call`, each item as `items` makes it.
  template <typename Request, typename Response, typename Call_, typename Items>
  httpd::Response DatabasePage(Call& c, Call_ call, const char* key, Items items);
  // A backup whose database the caller may see with role `min`.
  absl::StatusOr<v1::Backup> FindBackup(Call& c, const std::string& id, Role min);
  // domains.cc
  httpd::Response CreateDomain(Call& c);
  httpd::Response ListDomains(Call& c);
  httpd::Response GetDomain(Call& c);
  httpd::Response DeleteDomain(Call& c);
  // The domain if the caller holds at least `min` in its service's
  // project; NotFound otherwise.
  absl::StatusOr<v1::Domain> FindDomain(Call& c, const std::string& id, Role min);
  httpd::Response CreateWebhook(Call& c);
  httpd::Response ListWebhooks(Call& c);
  httpd::Response ListDeliveries(Call& c);
  // POST /v1/webhooks/{provider}/{hook}: authenticated by the hook's secret.
  httpd::Response ReceiveWebhook(httpd::Request& req);
  // Records a verified delivery (once per delivery id) and starts the build
  // it asks for, if any; `why` says why not.
  httpd::Response RecordDelivery(httpd::Request& req, const Service& service, Delivery d,
                                 const std::string& why);
  // A pull request's delivery (previews.cc): opened or updated, its preview
  // made if need be and deployed from the request's head; closed, deleted.
  httpd::Response ReceivePullRequest(httpd::Request& req, const Service& parent, Delivery d,
                                     const PullRequest& pr);
  // The live preview of `parent` for `pr`, made now (settings, sealed env)
  // when there is none; FailedPrecondition when the project has its cap.
  absl::StatusOr<Service> EnsurePreview(const Service& parent, const PullRequest& pr,
                                        const std::string& request_id);
  // Stops a service's instances (asynchronously) and deletes it, with its
  // previews; audited as `actor` (a user and token, or none for a webhook).
  absl::Status RemoveService(const Service& s, const AuditEntry& actor);

  httpd::Response Healthz(httpd::Request& req);
  httpd::Response Readyz(httpd::Request& req);
  httpd::Response Metrics(httpd::Request& req);

  // The release configuration of a service as it is now.
  absl::StatusOr<v1::ServiceSpec> Spec(const Service& s, const std::string& request_id);
  // The service's volumes that releases mount (not being deleted).
  // The service's database links as a release references them (none
  // without a dbprov).
  absl::StatusOr<std::vector<v1::DatabaseLinkRef>> ServiceLinks(const std::string& service_id,
                                                                const std::string& request_id);
  absl::StatusOr<std::vector<v1::Volume>> ServiceVolumes(const std::string& service_id,
                                                         const std::string& request_id);
  json ServiceJson(const Service& s) const;
  // The source a build fetches: the whole repo_url, unsealed.
  absl::StatusOr<v1::Source> BuildSource(const Service& s) const;
  // Env changes from a body {"KEY": "value" | {"value": "...", "secret": bool} | null}.
  absl::Status ApplyEnv(pg::Tx& tx, const std::string& service_id, const json& env, bool replace);
  Upstreams upstreams() { return {builder_.get(), deployer_.get(), &timers_, config_.rpc_timeout}; }
  // {"id", "build": …|null, "deployment": …|null} for a build or deployment id.
  absl::StatusOr<json> DeploymentView(Call& c, const std::string& id, std::string* service_id);

  pg::Pool& pool_;
  const Config& config_;
  std::unique_ptr<v1::BuilderService::Stub> builder_;
  std::unique_ptr<v1::DeployerService::Stub> deployer_;
  std::unique_ptr<v1::DatabaseService::Stub> dbprov_;  // null without a dbprov
  std::unique_ptr<v1::CertService::Stub> certs_;       // null without a certs service
  std::shared_ptr<grpc::Channel> builder_channel_, deployer_channel_;
  httpd::Router router_;

  // Token (SHA-256 hex) -> principal, for a minute: most requests of a
  // client come in bursts. Revoking a token or disabling a user notifies
  // kAuthChannel (a trigger does), and the cache empties at once.
  struct Cached {
    Principal who;
    absl::Time until;
  };
  absl::Mutex cache_mu_;
  absl::flat_hash_map<std::string, Cached> tokens_ ABSL_GUARDED_BY(cache_mu_);
  uint64_t auth_epoch_ ABSL_GUARDED_BY(cache_mu_) = 0;  // bumped by every notification
  std::unique_ptr<pg::Listener> auth_listener_;

  Timers timers_;                 // delays within log streams
  RateLimiter hook_rate_{20, 2};  // per webhook: 20 deliveries, 2 more each second
  RateLimiter user_rate_;
  SlotCounter user_streams_;
};

template <typename Request, typename Response, typename Stub, typename Rpc, typename Items>
httpd::Response Gateway::ServicePage(Call& c, Stub& stub, Rpc call, const char* key, Items items) {
  auto size = PageSize(c.req);
  if (!size.ok()) return FromStatus(size.status());
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  Request req;
  req.set_service_id(sp->first.id);
  req.mutable_page()->set_page_size(*size);
  req.mutable_page()->set_page_token(c.req.Query("page_token"));
  Response resp;
  if (auto g = (stub.*call)(&ctx, req, &resp); !g.ok()) return FromStatus(rpc::FromGrpc(g));
  return Json(200, {{key, items(resp)}, {"next_page_token", OrNull(resp.next_page_token())}});
}

}  // namespace c2d::gateway
