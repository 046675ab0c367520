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
          {"last_rotated_at", Time(Micros(d.last_rotated_at()))}};
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

}  // namespace

absl::StatusOr<v1::Database> Gateway::FindDatabase(Call& c, const std::string& id, Role min) {
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
  if (d.state() == v1::DATABASE_STATE_DELETED) return not_found;
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
  body["note"] = "its server and data are being destroyed";
  return Json(202, body);
}

}  // namespace c2d::gateway
