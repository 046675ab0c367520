// Links between databases and services (DESIGN points 3, 10, 16): recorded
// here, turned into connection variables for the deployer at deploy time.

#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "services/dbprov/database_service.h"
#include "services/dbprov/provision_job.h"
#include "services/dbprov/store.h"

namespace c2d::dbprov {
namespace {

const char* Scheme(v1::DatabaseEngine engine) {
  switch (engine) {
    case v1::DATABASE_ENGINE_MARIADB:
      return "mysql";
    case v1::DATABASE_ENGINE_REDIS:
      return "redis";
    default:
      return "postgresql";
  }
}

// Why a database cannot be linked or resolved in its state; OK when it can.
absl::Status Usable(const v1::Database& d, bool provisioned) {
  switch (d.state()) {
    case v1::DATABASE_STATE_AVAILABLE:
    case v1::DATABASE_STATE_ROTATING:
    case v1::DATABASE_STATE_RESTORING:
      return absl::OkStatus();
    case v1::DATABASE_STATE_PROVISIONING:
      if (!provisioned) return absl::OkStatus();
      return absl::FailedPreconditionError(
          absl::StrCat("database ", d.name(), " is still being provisioned"));
    case v1::DATABASE_STATE_FAILED:
      return absl::FailedPreconditionError(
          absl::StrCat("database ", d.name(), " failed to provision: ", d.failure_reason()));
    default:
      return absl::FailedPreconditionError(
          absl::StrCat("database ", d.name(), " is deleted or being deleted"));
  }
}

}  // namespace

std::string DefaultEnvPrefix(v1::DatabaseEngine engine) {
  switch (engine) {
    case v1::DATABASE_ENGINE_REDIS:
      return "REDIS";
    case v1::DATABASE_ENGINE_MARIADB:
      return "MYSQL";
    default:
      return "DATABASE";
  }
}

std::map<std::string, std::string> LinkEnv(const std::string& prefix, const Credentials& c) {
  // Passwords are c2d's own, URL-safe base64: nothing to escape in the URL.
  const std::string port = std::to_string(c.port);
  return {{prefix + "_URL", absl::StrCat(Scheme(c.engine), "://", c.user, ":", c.password, "@",
                                         c.host, ":", port, "/", c.name)},
          {prefix + "_HOST", c.host},
          {prefix + "_PORT", port},
          {prefix + "_USER", c.user},
          {prefix + "_PASSWORD", c.password},
          {prefix + "_NAME", c.name}};
}

grpc::Status DatabaseServiceImpl::LinkDatabase(grpc::ServerContext*,
                                               const v1::LinkDatabaseRequest* request,
                                               v1::DatabaseLink* response) {
  if (!ids::Valid(request->database_id(), "db"))
    return rpc::ToGrpc(rpc::InvalidField("database_id", "is not a database id"));
  if (!ids::Valid(request->service_id(), "svc"))
    return rpc::ToGrpc(rpc::InvalidField("service_id", "is not a service id"));
  if (!ids::Valid(request->project_id(), "prj"))
    return rpc::ToGrpc(rpc::InvalidField("project_id", "is not a project id"));
  if (!request->env_prefix().empty() && !rpc::ValidEnvPrefix(request->env_prefix())) {
    return rpc::ToGrpc(rpc::InvalidField(
        "env_prefix", "must be 1-32 of A-Z, 0-9 and _, starting with a letter (e.g. DATABASE)"));
  }
  auto linked =
      pool_.Transact("link database", [&](pg::Tx& tx) -> absl::StatusOr<v1::DatabaseLink> {
        C2D_ASSIGN_OR_RETURN(DatabaseRow row, dbprov::GetDatabase(tx, request->database_id()));
        if (row.db.project_id() != request->project_id() ||
            row.db.state() == v1::DATABASE_STATE_DELETED) {
          return absl::NotFoundError(
              absl::StrCat("database ", request->database_id(), " does not exist in the project"));
        }
        C2D_RETURN_IF_ERROR(Usable(row.db, /*provisioned=*/false));
        v1::DatabaseLink link;
        link.set_id(ids::New("dbl"));
        link.set_database_id(row.db.id());
        link.set_service_id(request->service_id());
        link.set_project_id(row.db.project_id());
        link.set_env_prefix(request->env_prefix().empty() ? DefaultEnvPrefix(row.db.engine())
                                                          : request->env_prefix());
        link.set_database_name(row.db.name());
        C2D_RETURN_IF_ERROR(InsertLink(tx, link));
        return GetLink(tx, link.database_id(), link.service_id());
      });
  if (!linked.ok()) return rpc::ToGrpc(linked.status());
  log::Info("database linked", {{"database_id", linked->database_id()},
                                {"service_id", linked->service_id()},
                                {"env_prefix", linked->env_prefix()}});
  *response = std::move(*linked);
  return grpc::Status::OK;
}

grpc::Status DatabaseServiceImpl::UnlinkDatabase(grpc::ServerContext*,
                                                 const v1::UnlinkDatabaseRequest* request,
                                                 v1::UnlinkDatabaseResponse*) {
  if (!ids::Valid(request->database_id(), "db"))
    return rpc::ToGrpc(rpc::InvalidField("database_id", "is not a database id"));
  if (!ids::Valid(request->service_id(), "svc"))
    return rpc::ToGrpc(rpc::InvalidField("service_id", "is not a service id"));
  auto gone = pool_.Transact("unlink database", [&](pg::Tx& tx) {
    return DeleteLink(tx, request->database_id(), request->service_id());
  });
  if (!gone.ok()) return rpc::ToGrpc(gone.status());
  if (!*gone) {
    return rpc::ToGrpc(absl::NotFoundError(absl::StrCat(
        "database ", request->database_id(), " is not linked to service ", request->service_id())));
  }
  log::Info("database unlinked",
            {{"database_id", request->database_id()}, {"service_id", request->service_id()}});
  return grpc::Status::OK;
}

grpc::Status DatabaseServiceImpl::ListLinks(grpc::ServerContext*,
                                            const v1::ListLinksRequest* request,
                                            v1::ListLinksResponse* response) {
  const bool by_db = !request->database_id().empty(), by_svc = !request->service_id().empty();
  if (by_db == by_svc) {
    return rpc::ToGrpc(
        rpc::InvalidField("database_id", "exactly one of database_id and service_id is required"));
  }
  if (by_db && !ids::Valid(request->database_id(), "db"))
    return rpc::ToGrpc(rpc::InvalidField("database_id", "is not a database id"));
  if (by_svc && !ids::Valid(request->service_id(), "svc"))
    return rpc::ToGrpc(rpc::InvalidField("service_id", "is not a service id"));
  auto size = rpc::PageSize(request->page());
  if (!size.ok()) return rpc::ToGrpc(size.status());
  const std::string& token = request->page().page_token();
  if (!token.empty() && !ids::Valid(token, "dbl")) {
    return rpc::ToGrpc(rpc::InvalidField("page.page_token", "is not a token from a previous page"));
  }
  auto page = pool_.Read("list links", [&](pg::Tx& tx) {
    return dbprov::ListLinks(tx, request->database_id(), request->service_id(), token, *size);
  });
  if (!page.ok()) return rpc::ToGrpc(page.status());
  *response = std::move(*page);
  return grpc::Status::OK;
}

absl::StatusOr<v1::ResolvedLink> DatabaseServiceImpl::Resolve(const std::string& service_id,
                                                              const v1::DatabaseLinkRef& ref) {
  const std::string what = ref.database_name().empty() ? ref.database_id() : ref.database_name();
  auto row = pool_.Read("resolve link", [&](pg::Tx& tx) -> absl::StatusOr<DatabaseRow> {
    C2D_ASSIGN_OR_RETURN(DatabaseRow r, dbprov::GetDatabase(tx, ref.database_id()));
    C2D_RETURN_IF_ERROR(Usable(r.db, /*provisioned=*/true));
    if (absl::IsNotFound(GetLink(tx, ref.database_id(), service_id).status())) {
      return absl::FailedPreconditionError(
          absl::StrCat("database ", r.db.name(), " is no longer linked to this service"));
    }
    return r;
  });
  if (absl::IsNotFound(row.status())) {
    return absl::FailedPreconditionError(absl::StrCat("database ", what, " no longer exists"));
  }
  if (!row.ok()) return row.status();
  const v1::Database& d = row->db;
  const std::string role = d.active_role();
  auto password = OpenPassword(*config_.master_keys, *row, role);
  if (!password.ok()) return password.status();
  v1::ResolvedLink out;
  out.set_database_id(d.id());
  out.set_database_name(d.name());
  out.set_env_prefix(ref.env_prefix().empty() ? DefaultEnvPrefix(d.engine()) : ref.env_prefix());
  for (auto& [k, v] : LinkEnv(out.env_prefix(),
                              {.engine = d.engine(),
                              .host = d.host(),
                              .port = d.port(),
                              .user = RoleBase(d.name()) + "_" + role,
                              .password = *password,
                              // Redis: its database 0.
                               .name = d.engine() == v1::DATABASE_ENGINE_REDIS ? "0" : d.name()})) {
    (*out.mutable_env())[k] = v;
  }
  out.set_host(d.host());
  // The server's address on the project's network, for /etc/hosts.
  auto servers = provider_.List({{kDatabaseLabel, d.id()}});
  if (!servers.ok()) return servers.status();
  if (!servers->empty()) out.set_address(servers->front().private_address);
  return out;
}

grpc::Status DatabaseServiceImpl::ResolveLinks(grpc::ServerContext*,
                                               const v1::ResolveLinksRequest* request,
                                               v1::ResolveLinksResponse* response) {
  if (!ids::Valid(request->service_id(), "svc"))
    return rpc::ToGrpc(rpc::InvalidField("service_id", "is not a service id"));
  for (const v1::DatabaseLinkRef& ref : request->links()) {
    if (!ids::Valid(ref.database_id(), "db")) {
      return rpc::ToGrpc(rpc::InvalidField("links", "a link names no database id"));
    }
    auto resolved = Resolve(request->service_id(), ref);
    if (!resolved.ok()) return rpc::ToGrpc(resolved.status());
    *response->add_links() = std::move(*resolved);
  }
  return grpc::Status::OK;
}

}  // namespace c2d::dbprov
