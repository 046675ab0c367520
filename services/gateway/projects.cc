#include <regex>

#include "absl/strings/str_cat.h"
#include "libs/common/status.h"
#include "libs/rpc/validate.h"
#include "services/gateway/gateway.h"

namespace c2d::gateway {

// ---- projects and members

namespace {

bool ValidEmail(const std::string& e) {
  static const std::regex kEmail("^[^@\\s]+@[^@\\s]+$");
  return e.size() <= 254 && std::regex_match(e, kEmail);
}

json ProjectJson(const Project& p) {
  return {{"id", p.id},
          {"name", p.name},
          {"role", RoleName(p.role)},
          {"created_at", Time(absl::ToUnixMicros(p.created_at))}};
}

// PermissionDenied when `user_id` is an owner and the caller is not: only
// owners change or remove owners.
absl::Status OwnersOnlyByOwners(pg::Tx& tx, const Project& p, const std::string& user_id,
                                const char* what) {
  if (p.role == Role::kOwner) return absl::OkStatus();
  auto current = MemberRole(tx, p.id, user_id);
  if (!current.ok()) return current.status();
  if (*current == Role::kOwner) {
    return absl::PermissionDeniedError(absl::StrCat("only an owner can ", what, " an owner"));
  }
  return absl::OkStatus();
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
  // Hostnames contain the project's name: the routes move at once (below),
  // and the old name stays this project's for C2D_RENAME_HOLD.
  const bool renamed = name != p->name;
  absl::Status s = pool_.Transact("rename project", [&](pg::Tx& tx) -> absl::Status {
    if (renamed) {
      C2D_RETURN_IF_ERROR(RenameProject(tx, p->id, name, absl::FromChrono(config_.rename_hold)));
    }
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
  if (renamed) SyncRoutes(c, p->id);
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
    C2D_RETURN_IF_ERROR(OwnersOnlyByOwners(tx, *p, u->id, "change the role of"));
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
    C2D_RETURN_IF_ERROR(OwnersOnlyByOwners(tx, *p, user, "remove"));
    C2D_RETURN_IF_ERROR(gateway::RemoveMember(tx, p->id, user));
    return Audit(tx, {c.who.user_id, c.who.token_id, p->id, "member.remove", user, c.request_id,
                      c.req.remote_addr, json::object()});
  });
  if (!s.ok()) return FromStatus(s);
  httpd::Response r;
  r.status = 204;
  return r;
}

}  // namespace c2d::gateway
