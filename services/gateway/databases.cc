// Managed databases (DESIGN points 3, 15, 19, 25): recorded and provisioned
// by dbprov; the REST API checks the caller's role in the project and that
// the database is theirs (another tenant's is "not found").

#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/status.h"
#include "libs/rpc/status.h"
#include "services/gateway/gateway.h"

namespace c2d::gateway {
namespace {

json DatabaseJson(const v1::Database& d) {
  return {{"id", d.id()},
          {"project_id", d.project_id()},
          {"name", d.name()},
          {"engine", EnumText(v1::DatabaseEngine_Name(d.engine()), 16)},
          {"version", d.version()},
          {"plan", d.plan()},
          {"state", EnumText(v1::DatabaseState_Name(d.state()), 15)},
          {"failure_reason", OrNull(d.failure_reason())},
          {"host", OrNull(d.host())},
          {"port", d.port() > 0 ? json(d.port()) : json(nullptr)},
          {"backup_schedule", d.backup_schedule()},
          {"retention_daily", d.retention_daily()},
          {"retention_weekly", d.retention_weekly()},
          {"rotation_days", d.rotation_days()},
          {"created_at", Time(Micros(d.created_at()))},
          {"last_backup_at", Time(Micros(d.last_backup_at()))},
          {"last_rotated_at", Time(Micros(d.last_rotated_at()))},
          {"active_role", d.active_role()},
          {"retiring_role", OrNull(d.retiring_role())}};
}

// The body of POST /v1/projects/{id}/databases as a request (project unset).
absl::StatusOr<v1::CreateDatabaseRequest> CreateRequest(const std::string& body) {
  auto o = ParseObject(body, {"name", "engine", "version", "plan", "backup_schedule",
                              "retention_daily", "retention_weekly", "rotation_days"});
  if (!o.ok()) return o.status();
  v1::CreateDatabaseRequest r;
  std::string name, engine, version, plan, schedule;
  C2D_RETURN_IF_ERROR(GetString(*o, "name", "", &name, 64));
  if (name.empty()) return FieldError("name", "is required");
  C2D_RETURN_IF_ERROR(GetString(*o, "engine", "", &engine, 16));
  static const std::map<std::string, v1::DatabaseEngine> kEngines = {
      {"postgres", v1::DATABASE_ENGINE_POSTGRES},
      {"mariadb", v1::DATABASE_ENGINE_MARIADB},
      {"redis", v1::DATABASE_ENGINE_REDIS}};
  auto e = kEngines.find(engine);
  if (e == kEngines.end()) return FieldError("engine", "must be postgres, mariadb or redis");
  C2D_RETURN_IF_ERROR(GetString(*o, "version", "", &version, 16));
  C2D_RETURN_IF_ERROR(GetString(*o, "plan", "", &plan, 64));
  r.set_name(name);
  r.set_engine(e->second);
  r.set_version(version);
  r.set_plan(plan);
  if (o->contains("backup_schedule") && !(*o)["backup_schedule"].is_null()) {
    C2D_RETURN_IF_ERROR(GetString(*o, "backup_schedule", "", &schedule, 128));
    r.set_backup_schedule(schedule);
  }
  // Absent (or null) keeps dbprov's defaults.
  int daily = -1, weekly = -1, rotation = 0;
  C2D_RETURN_IF_ERROR(GetInt(*o, "retention_daily", "", 0, 366, &daily));
  C2D_RETURN_IF_ERROR(GetInt(*o, "retention_weekly", "", 0, 520, &weekly));
  C2D_RETURN_IF_ERROR(GetInt(*o, "rotation_days", "", 0, 3650, &rotation));
  if (daily >= 0) r.set_retention_daily(daily);
  if (weekly >= 0) r.set_retention_weekly(weekly);
  r.set_rotation_days(rotation);
  return r;
}

json LinkJson(const v1::DatabaseLink& l) {
  return {{"id", l.id()},
          {"database_id", l.database_id()},
          {"database_name", l.database_name()},
          {"service_id", l.service_id()},
          {"project_id", l.project_id()},
          {"env_prefix", l.env_prefix()},
          {"created_at", Time(Micros(l.created_at()))}};
}

json BackupJson(const v1::Backup& b) {
  const bool done = b.state() == v1::BACKUP_STATE_SUCCEEDED;
  return {{"id", b.id()},
          {"database_id", b.database_id()},
          {"state", EnumText(v1::BackupState_Name(b.state()), 13)},
          {"kind", EnumText(v1::BackupKind_Name(b.kind()), 12)},
          {"size_bytes", done ? json(b.size_bytes()) : json(nullptr)},
          {"sha256", OrNull(b.sha256())},
          {"verified", b.has_verified_at()},
          {"verification", OrNull(b.verification())},
          {"failure_reason", OrNull(b.failure_reason())},
          {"created_at", Time(Micros(b.created_at()))},
          {"started_at", Time(Micros(b.started_at()))},
          {"finished_at", Time(Micros(b.finished_at()))},
          {"verified_at", Time(Micros(b.verified_at()))}};
}

}  // namespace

absl::StatusOr<v1::Database> Gateway::FindDatabase(Call& c, const std::string& id, Role min,
                                                   bool deleted_ok) {
  const absl::Status not_found =
      absl::NotFoundError(absl::StrCat("database ", id.substr(0, 64), " does not exist"));
  if (!ids::Valid(id, "db")) return not_found;
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::GetDatabaseRequest req;
  req.set_id(id);
  v1::Database d;
  if (auto g = dbprov_->GetDatabase(&ctx, req, &d); !g.ok()) {
    absl::Status s = rpc::FromGrpc(g);
    return absl::IsNotFound(s) ? not_found : s;
  }
  if (d.state() == v1::DATABASE_STATE_DELETED && !deleted_ok) return not_found;
  // Another tenant's database is "not found", like anything else of theirs.
  auto p = Authorize(c, d.project_id(), min);
  if (absl::IsNotFound(p.status())) return not_found;
  if (!p.ok()) return p.status();
  return d;
}

httpd::Response Gateway::CreateDatabase(Call& c) {
  auto p = Authorize(c, c.req.params["id"], Role::kDeveloper);
  if (!p.ok()) return FromStatus(p.status());
  auto req = CreateRequest(c.req.body);
  if (!req.ok()) return FromStatus(req.status());
  req->set_project_id(p->id);
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::Database d;
  if (auto g = dbprov_->CreateDatabase(&ctx, *req, &d); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  if (auto a = AuditMutation(c, p->id, "database.create", d.id(),
                             {{"name", d.name()},
                              {"engine", EnumText(v1::DatabaseEngine_Name(d.engine()), 16)},
                              {"plan", d.plan()}});
      !a.ok()) {
    return FromStatus(a);
  }
  json out = DatabaseJson(d);
  out["note"] = "provisioning: GET it until its state is available";
  httpd::Response r = Json(202, out);
  r.headers.emplace_back("Location", "/v1/databases/" + d.id());
  return r;
}

httpd::Response Gateway::ListDatabases(Call& c) {
  auto size = PageSize(c.req);
  if (!size.ok()) return FromStatus(size.status());
  auto p = Authorize(c, c.req.params["id"], Role::kViewer);
  if (!p.ok()) return FromStatus(p.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::ListDatabasesRequest req;
  req.set_project_id(p->id);
  req.mutable_page()->set_page_size(*size);
  req.mutable_page()->set_page_token(c.req.Query("page_token"));
  v1::ListDatabasesResponse resp;
  if (auto g = dbprov_->ListDatabases(&ctx, req, &resp); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  json items = json::array();
  for (const v1::Database& d : resp.databases()) items.push_back(DatabaseJson(d));
  return Json(200, {{"databases", items}, {"next_page_token", OrNull(resp.next_page_token())}});
}

httpd::Response Gateway::GetDatabase(Call& c) {
  auto d = FindDatabase(c, c.req.params["id"], Role::kViewer);
  if (!d.ok()) return FromStatus(d.status());
  return Json(200, DatabaseJson(*d));
}

httpd::Response Gateway::DeleteDatabase(Call& c) {
  auto d = FindDatabase(c, c.req.params["id"], Role::kAdmin);
  if (!d.ok()) return FromStatus(d.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::DeleteDatabaseRequest req;
  req.set_id(d->id());
  const std::string final_backup = c.req.Query("final_backup");
  if (final_backup != "" && final_backup != "true" && final_backup != "false") {
    return FromStatus(rpc::InvalidField("final_backup", "must be true or false"));
  }
  req.set_skip_final_backup(final_backup == "false");
  v1::Database out;
  if (auto g = dbprov_->DeleteDatabase(&ctx, req, &out); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  if (auto a =
          AuditMutation(c, out.project_id(), "database.delete", out.id(), {{"name", out.name()}});
      !a.ok()) {
    return FromStatus(a);
  }
  json body = DatabaseJson(out);
  if (out.final_backup_id().empty()) {
    body["final_backup_id"] = nullptr;
    body["note"] = "its server and data are being destroyed";
  } else {
    body["final_backup_id"] = out.final_backup_id();
    body["note"] = absl::StrCat("a final backup (", out.final_backup_id(),
                                ") is being taken and verified; then its server and data are "
                                "destroyed. The backup is kept: restore it with POST /v1/backups/",
                                out.final_backup_id(), "/restore {\"new_database_name\": …}");
  }
  return Json(202, body);
}

absl::StatusOr<std::vector<v1::DatabaseLinkRef>> Gateway::ServiceLinks(
    const std::string& service_id, const std::string& request_id) {
  std::vector<v1::DatabaseLinkRef> out;
  if (dbprov_ == nullptr) return out;
  v1::ListLinksRequest req;
  req.set_service_id(service_id);
  req.mutable_page()->set_page_size(100);
  for (;;) {
    grpc::ClientContext ctx;
    Context(ctx, request_id);
    v1::ListLinksResponse resp;
    if (auto g = dbprov_->ListLinks(&ctx, req, &resp); !g.ok()) return rpc::FromGrpc(g);
    for (const v1::DatabaseLink& l : resp.links()) {
      v1::DatabaseLinkRef& ref = out.emplace_back();
      ref.set_database_id(l.database_id());
      ref.set_database_name(l.database_name());
      ref.set_engine(l.engine());
      ref.set_env_prefix(l.env_prefix());
    }
    if (resp.next_page_token().empty()) return out;
    req.mutable_page()->set_page_token(resp.next_page_token());
  }
}

absl::StatusOr<json> Gateway::RedeployForLinks(Call& c, const Service& s) {
  C2D_ASSIGN_OR_RETURN(v1::ServiceSpec spec, Spec(s, c.request_id));
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::RedeployRequest req;
  req.set_service_id(s.id);
  *req.mutable_spec() = std::move(spec);
  req.set_request_id(c.request_id);
  v1::Deployment d;
  absl::Status st = rpc::FromGrpc(deployer_->Redeploy(&ctx, req, &d));
  if (absl::IsFailedPrecondition(st)) return json(nullptr);  // nothing live yet
  if (!st.ok()) return st;
  return json(d.id());
}

httpd::Response Gateway::CreateLink(Call& c) {
  auto d = FindDatabase(c, c.req.params["id"], Role::kDeveloper);
  if (!d.ok()) return FromStatus(d.status());
  auto body = ParseObject(c.req.body, {"service_id", "env_prefix"});
  if (!body.ok()) return FromStatus(body.status());
  std::string service_id, prefix;
  if (auto s = GetString(*body, "service_id", "", &service_id, 64); !s.ok()) return FromStatus(s);
  if (service_id.empty()) return FromStatus(FieldError("service_id", "is required"));
  if (auto s = GetString(*body, "env_prefix", "", &prefix, 64); !s.ok()) return FromStatus(s);
  auto sp = AuthorizeService(c, service_id, Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  if (sp->first.project_id != d->project_id()) {
    return FromStatus(FieldError("service_id",
                                 "must be a service of the database's project (links stay "
                                 "inside a project)"));
  }
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::LinkDatabaseRequest req;
  req.set_database_id(d->id());
  req.set_service_id(service_id);
  req.set_project_id(d->project_id());
  req.set_env_prefix(prefix);
  v1::DatabaseLink link;
  if (auto g = dbprov_->LinkDatabase(&ctx, req, &link); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  if (auto a = AuditMutation(c, d->project_id(), "database.link", d->id(),
                             {{"service_id", service_id}, {"env_prefix", link.env_prefix()}});
      !a.ok()) {
    return FromStatus(a);
  }
  json out = LinkJson(link);
  auto deployment = RedeployForLinks(c, sp->first);
  if (!deployment.ok()) return FromStatus(deployment.status());
  out["deployment_id"] = *deployment;
  out["note"] =
      deployment->is_null()
          ? std::string("the service's first deployment will have ") + link.env_prefix() + "_URL"
          : "a new release with " + link.env_prefix() + "_URL is deploying";
  httpd::Response r = Json(201, out);
  r.headers.emplace_back("Location", "/v1/databases/" + d->id() + "/links/" + service_id);
  return r;
}

template <typename Request, typename Response, typename Call_, typename Items>
httpd::Response Gateway::DatabasePage(Call& c, Call_ call, const char* key, Items items) {
  auto size = PageSize(c.req);
  if (!size.ok()) return FromStatus(size.status());
  // A deleted database's backups (its final one) are still listed.
  auto d = FindDatabase(c, c.req.params["id"], Role::kViewer, /*deleted_ok=*/true);
  if (!d.ok()) return FromStatus(d.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  Request req;
  req.set_database_id(d->id());
  req.mutable_page()->set_page_size(*size);
  req.mutable_page()->set_page_token(c.req.Query("page_token"));
  Response resp;
  if (auto g = ((*dbprov_).*call)(&ctx, req, &resp); !g.ok()) return FromStatus(rpc::FromGrpc(g));
  return Json(200, {{key, items(resp)}, {"next_page_token", OrNull(resp.next_page_token())}});
}

httpd::Response Gateway::ListLinks(Call& c) {
  return DatabasePage<v1::ListLinksRequest, v1::ListLinksResponse>(
      c, &v1::DatabaseService::Stub::ListLinks, "links", [](const v1::ListLinksResponse& r) {
        json items = json::array();
        for (const v1::DatabaseLink& l : r.links()) items.push_back(LinkJson(l));
        return items;
      });
}

httpd::Response Gateway::DeleteLink(Call& c) {
  auto d = FindDatabase(c, c.req.params["id"], Role::kDeveloper);
  if (!d.ok()) return FromStatus(d.status());
  const std::string& service_id = c.req.params["service"];
  auto sp = AuthorizeService(c, service_id, Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::UnlinkDatabaseRequest req;
  req.set_database_id(d->id());
  req.set_service_id(service_id);
  v1::UnlinkDatabaseResponse resp;
  if (auto g = dbprov_->UnlinkDatabase(&ctx, req, &resp); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  if (auto a = AuditMutation(c, d->project_id(), "database.unlink", d->id(),
                             {{"service_id", service_id}});
      !a.ok()) {
    return FromStatus(a);
  }
  auto deployment = RedeployForLinks(c, sp->first);
  if (!deployment.ok()) return FromStatus(deployment.status());
  return Json(200, {{"database_id", d->id()},
                    {"service_id", service_id},
                    {"deployment_id", *deployment},
                    {"note", deployment->is_null()
                                 ? "unlinked"
                                 : "unlinked; a new release without the database is deploying"}});
}

httpd::Response Gateway::RotateCredentials(Call& c) {
  // Like a link, a rotation redeploys the project's linked services.
  auto d = FindDatabase(c, c.req.params["id"], Role::kDeveloper);
  if (!d.ok()) return FromStatus(d.status());
  auto body = ParseObject(c.req.body, {}, /*empty_ok=*/true);
  if (!body.ok()) return FromStatus(body.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::RotateCredentialsRequest req;
  req.set_database_id(d->id());
  v1::Database out;
  if (auto g = dbprov_->RotateCredentials(&ctx, req, &out); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  if (auto a =
          AuditMutation(c, out.project_id(), "database.rotate", out.id(), {{"name", out.name()}});
      !a.ok()) {
    return FromStatus(a);
  }
  json r = DatabaseJson(out);
  r["note"] =
      "a new password on the idle login role; linked services are redeployed onto it, then the "
      "old role is disabled. The database stays available throughout; state goes back to "
      "available when done (failure_reason says why if it stopped)";
  return Json(202, r);
}

httpd::Response Gateway::CreateBackup(Call& c) {
  auto d = FindDatabase(c, c.req.params["id"], Role::kDeveloper);
  if (!d.ok()) return FromStatus(d.status());
  auto body = ParseObject(c.req.body, {}, /*empty_ok=*/true);
  if (!body.ok()) return FromStatus(body.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::CreateBackupRequest req;
  req.set_database_id(d->id());
  v1::Backup b;
  if (auto g = dbprov_->CreateBackup(&ctx, req, &b); !g.ok()) return FromStatus(rpc::FromGrpc(g));
  if (auto a =
          AuditMutation(c, d->project_id(), "backup.create", b.id(), {{"database_id", d->id()}});
      !a.ok()) {
    return FromStatus(a);
  }
  json out = BackupJson(b);
  out["note"] = "dumping, then restore-verifying: GET it until its state is succeeded";
  httpd::Response r = Json(202, out);
  r.headers.emplace_back("Location", "/v1/backups/" + b.id());
  return r;
}

httpd::Response Gateway::ListBackups(Call& c) {
  return DatabasePage<v1::ListBackupsRequest, v1::ListBackupsResponse>(
      c, &v1::DatabaseService::Stub::ListBackups, "backups", [](const v1::ListBackupsResponse& r) {
        json items = json::array();
        for (const v1::Backup& b : r.backups()) items.push_back(BackupJson(b));
        return items;
      });
}

absl::StatusOr<v1::Backup> Gateway::FindBackup(Call& c, const std::string& id, Role min) {
  const absl::Status not_found =
      absl::NotFoundError(absl::StrCat("backup ", id.substr(0, 64), " does not exist"));
  if (!ids::Valid(id, "bak")) return not_found;
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::GetBackupRequest req;
  req.set_id(id);
  v1::Backup b;
  if (auto g = dbprov_->GetBackup(&ctx, req, &b); !g.ok()) {
    absl::Status s = rpc::FromGrpc(g);
    return absl::IsNotFound(s) ? not_found : s;
  }
  // Another tenant's backup is as absent as their database.
  auto d = FindDatabase(c, b.database_id(), min, /*deleted_ok=*/true);
  if (absl::IsNotFound(d.status())) return not_found;
  if (!d.ok()) return d.status();
  return b;
}

httpd::Response Gateway::GetBackup(Call& c) {
  auto b = FindBackup(c, c.req.params["id"], Role::kViewer);
  if (!b.ok()) return FromStatus(b.status());
  return Json(200, BackupJson(*b));
}

httpd::Response Gateway::RestoreBackup(Call& c) {
  auto body = ParseObject(c.req.body, {"new_database_name"}, /*empty_ok=*/true);
  if (!body.ok()) return FromStatus(body.status());
  std::string into;
  if (auto s = GetString(*body, "new_database_name", "", &into, 64); !s.ok()) return FromStatus(s);
  // Overwriting a database is an admin's call; a copy, a developer's.
  auto b = FindBackup(c, c.req.params["id"], into.empty() ? Role::kAdmin : Role::kDeveloper);
  if (!b.ok()) return FromStatus(b.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::RestoreBackupRequest req;
  req.set_backup_id(b->id());
  if (into.empty()) {
    req.set_database_id(b->database_id());
  } else {
    req.set_new_database_name(into);
  }
  v1::Database d;
  if (auto g = dbprov_->RestoreBackup(&ctx, req, &d); !g.ok()) {
    absl::Status s = rpc::FromGrpc(g);
    if (rpc::ErrorField(s) == "new_database_name") {
      return FromStatus(FieldError("new_database_name", std::string(s.message())));
    }
    return FromStatus(s);
  }
  if (auto a = AuditMutation(c, d.project_id(), "backup.restore", b->id(),
                             {{"database_id", d.id()}, {"new", !into.empty()}});
      !a.ok()) {
    return FromStatus(a);
  }
  json out = DatabaseJson(d);
  out["note"] = into.empty() ? "restoring: its apps see errors until the state is available again"
                             : "provisioning, then restoring: GET it until its state is available";
  return Json(202, out);
}

}  // namespace c2d::gateway
