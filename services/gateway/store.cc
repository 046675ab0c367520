#include "services/gateway/store.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "libs/http/client.h"

namespace c2d::gateway {
namespace {

#define C2D_MICROS(col) "(extract(epoch FROM " col ") * 1000000)::bigint"

constexpr pg::Statement kUpsertUser{"users_upsert", R"sql(
INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)
ON CONFLICT (email) DO UPDATE SET updated_at = users.updated_at
RETURNING id, email, display_name)sql"};
constexpr pg::Statement kUserByEmail{"users_by_email",
                                     "SELECT id, email, display_name FROM users WHERE email = $1"};

constexpr pg::Statement kInsertToken{"tokens_insert", R"sql(
INSERT INTO api_tokens (id, user_id, name, prefix, token_sha256)
VALUES ($1, $2, $3, $4, decode($5, 'hex')))sql"};
constexpr pg::Statement kAuthenticate{"tokens_authenticate", R"sql(
SELECT t.id, t.user_id FROM api_tokens t JOIN users u ON u.id = t.user_id
WHERE t.token_sha256 = decode($1, 'hex') AND t.revoked_at IS NULL
  AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.disabled_at IS NULL)sql"};
constexpr pg::Statement kTouchToken{"tokens_touch", R"sql(
UPDATE api_tokens SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'))sql"};

constexpr pg::Statement kInsertProject{"projects_insert",
                                       "INSERT INTO projects (id, name) VALUES ($1, $2)"};
constexpr pg::Statement kSetMember{"members_set", R"sql(
INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)
ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role)sql"};
constexpr pg::Statement kGetProject{
    "projects_get", "SELECT p.id, p.name, m.role, " C2D_MICROS("p.created_at") R"sql(
FROM projects p JOIN project_members m ON m.project_id = p.id
WHERE p.id = $1 AND m.user_id = $2 AND p.deleted_at IS NULL)sql"};
constexpr pg::Statement kListProjects{
    "projects_list", "SELECT p.id, p.name, m.role, " C2D_MICROS("p.created_at") R"sql(
FROM projects p JOIN project_members m ON m.project_id = p.id
WHERE m.user_id = $1 AND p.deleted_at IS NULL AND p.name > $2
ORDER BY p.name LIMIT $3)sql"};
constexpr pg::Statement kNameHeld{"projects_name_held", R"sql(
SELECT to_char(until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') FROM project_name_holds
WHERE name = $1 AND until > now() AND project_id <> $2)sql"};
constexpr pg::Statement kHoldName{"projects_hold_name", R"sql(
INSERT INTO project_name_holds (name, project_id, until)
SELECT name, id, now() + make_interval(secs => $2) FROM projects WHERE id = $1
ON CONFLICT (name) DO UPDATE SET project_id = EXCLUDED.project_id, until = EXCLUDED.until)sql"};
// Expired holds go at the next rename: the table holds live ones and the
// few that lapsed since.
constexpr pg::Statement kPruneHolds{"projects_prune_holds",
                                    "DELETE FROM project_name_holds WHERE until <= now()"};
constexpr pg::Statement kRenameProject{"projects_rename", R"sql(
UPDATE projects SET name = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL)sql"};
constexpr pg::Statement kDeleteProject{"projects_delete", R"sql(
UPDATE projects SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL)sql"};
constexpr pg::Statement kListMembers{"members_list", R"sql(
SELECT m.user_id, u.email, m.role FROM project_members m JOIN users u ON u.id = m.user_id
WHERE m.project_id = $1 ORDER BY u.email)sql"};
constexpr pg::Statement kRemoveMember{
    "members_remove", "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2"};
constexpr pg::Statement kMemberRole{
    "members_role",
    "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2 FOR UPDATE"};
constexpr pg::Statement kOwnerCount{
    "members_owners",
    "SELECT count(*) FROM project_members WHERE project_id = $1 AND role = 'owner'"};

#define C2D_SERVICE_COLUMNS \
  "s.id, s.project_id, p.name, s.name, s.type, s.revision, s.repo_url, s.branch, s.root_dir, " \
  "s.auto_deploy, s.build_strategy, s.dockerfile_path, s.build_command, s.start_command, "     \
  "coalesce(s.port, 0), s.instance_count, s.memory_mb, s.cpu_millis, s.health_path, "          \
  "coalesce(s.health_port, 0), s.health_interval_s, s.health_timeout_s, "                      \
  "s.health_healthy_threshold, s.health_unhealthy_threshold, "                                 \
  "s.health_start_period_s, " C2D_MICROS("s.created_at") ", " C2D_MICROS("s.updated_at") ", " \
  "coalesce(encode(s.repo_url_sealed, 'base64'), ''), coalesce(s.preview_of, ''), "           \
  "coalesce(s.preview_number, 0)"

constexpr pg::Statement kInsertService{"services_insert", R"sql(
INSERT INTO services (id, project_id, name, type, repo_url, branch, root_dir, auto_deploy,
  build_strategy, dockerfile_path, build_command, start_command, port, instance_count, memory_mb,
  cpu_millis, health_path, health_port, health_interval_s, health_timeout_s,
  health_healthy_threshold, health_unhealthy_threshold, health_start_period_s, repo_url_sealed,
  preview_of, preview_number)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULLIF($13, 0), $14, $15, $16, $17,
        NULLIF($18, 0), $19, $20, $21, $22, $23, NULLIF(decode($24, 'base64'), ''),
        NULLIF($25, ''), NULLIF($26, 0)))sql"};
constexpr pg::Statement kGetService{"services_get", "SELECT " C2D_SERVICE_COLUMNS R"sql(
FROM services s JOIN projects p ON p.id = s.project_id
WHERE s.id = $1 AND s.deleted_at IS NULL AND p.deleted_at IS NULL)sql"};
constexpr pg::Statement kFindPreview{"services_find_preview", "SELECT " C2D_SERVICE_COLUMNS R"sql(
FROM services s JOIN projects p ON p.id = s.project_id
WHERE s.preview_of = $1 AND s.preview_number = $2 AND s.deleted_at IS NULL)sql"};
constexpr pg::Statement kPreviewsOf{"services_previews_of", R"sql(
SELECT id FROM services WHERE preview_of = $1 AND deleted_at IS NULL ORDER BY id)sql"};
constexpr pg::Statement kLockPreviews{
    "services_lock_previews", "SELECT pg_advisory_xact_lock(hashtext('c2d.previews:' || $1))"};
constexpr pg::Statement kCountPreviews{"services_count_previews", R"sql(
SELECT count(*) FROM services
WHERE project_id = $1 AND preview_of IS NOT NULL AND deleted_at IS NULL)sql"};
constexpr pg::Statement kListServices{"services_list", "SELECT " C2D_SERVICE_COLUMNS R"sql(
FROM services s JOIN projects p ON p.id = s.project_id
WHERE s.project_id = $1 AND s.deleted_at IS NULL AND s.name > $2
ORDER BY s.name LIMIT $3)sql"};
constexpr pg::Statement kUpdateService{"services_update", R"sql(
UPDATE services SET name = $2, type = $3, repo_url = $4, branch = $5, root_dir = $6,
  auto_deploy = $7, build_strategy = $8, dockerfile_path = $9, build_command = $10,
  start_command = $11, port = NULLIF($12, 0), instance_count = $13, memory_mb = $14,
  cpu_millis = $15, health_path = $16, health_port = NULLIF($17, 0), health_interval_s = $18,
  health_timeout_s = $19, health_healthy_threshold = $20, health_unhealthy_threshold = $21,
  health_start_period_s = $22, repo_url_sealed = NULLIF(decode($23, 'base64'), ''),
  revision = revision + 1, updated_at = now()
WHERE id = $1 AND deleted_at IS NULL)sql"};
constexpr pg::Statement kDeleteService{"services_delete", R"sql(
UPDATE services SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL)sql"};
constexpr pg::Statement kServicesOfProject{
    "services_of_project",
    "SELECT id FROM services WHERE project_id = $1 AND deleted_at IS NULL ORDER BY name"};
constexpr pg::Statement kBumpRevision{"services_bump", R"sql(
UPDATE services SET revision = revision + 1, updated_at = now() WHERE id = $1)sql"};

constexpr pg::Statement kListEnv{"env_list", R"sql(
SELECT key, key_id, wrapped_key, nonce, ciphertext, secret FROM env_vars
WHERE service_id = $1 ORDER BY key)sql"};
constexpr pg::Statement kPutEnv{"env_put", R"sql(
INSERT INTO env_vars (id, service_id, key, key_id, wrapped_key, nonce, ciphertext, secret)
VALUES ($1, $2, $3, $4, decode($5, 'hex'), decode($6, 'hex'), decode($7, 'hex'), $8)
ON CONFLICT (service_id, key) DO UPDATE SET key_id = EXCLUDED.key_id,
  wrapped_key = EXCLUDED.wrapped_key, nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext,
  secret = EXCLUDED.secret, updated_at = now())sql"};
constexpr pg::Statement kDeleteEnv{"env_delete",
                                   "DELETE FROM env_vars WHERE service_id = $1 AND key = $2"};
constexpr pg::Statement kDeleteAllEnv{"env_delete_all",
                                      "DELETE FROM env_vars WHERE service_id = $1"};

constexpr pg::Statement kInsertWebhook{"webhooks_insert", R"sql(
INSERT INTO webhooks (id, service_id, provider, secret_key_id, secret_wrapped_key, secret_nonce,
                      secret_ciphertext)
VALUES ($1, $2, $3, $4, decode($5, 'hex'), decode($6, 'hex'), decode($7, 'hex')))sql"};
#define C2D_WEBHOOK_COLUMNS                                                                 \
  "w.id, w.service_id, w.provider, w.secret_key_id, w.secret_wrapped_key, w.secret_nonce, " \
  "w.secret_ciphertext"
constexpr pg::Statement kGetWebhook{"webhooks_get", "SELECT " C2D_WEBHOOK_COLUMNS R"sql(
FROM webhooks w JOIN services s ON s.id = w.service_id
WHERE w.id = $1 AND w.provider = $2 AND s.deleted_at IS NULL)sql"};
constexpr pg::Statement kListWebhooks{"webhooks_list", "SELECT " C2D_WEBHOOK_COLUMNS R"sql(
FROM webhooks w WHERE w.service_id = $1 ORDER BY w.provider)sql"};
constexpr pg::Statement kInsertDelivery{"deliveries_insert", R"sql(
INSERT INTO webhook_deliveries (id, webhook_id, provider, delivery_id, event, ref, commit_sha,
                                outcome, reason)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''), $8, NULLIF(left($9, 1000), ''))
ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id)sql"};
constexpr pg::Statement kDeliveryBuild{"deliveries_build",
                                       "UPDATE webhook_deliveries SET build_id = $2 WHERE id = $1"};
constexpr pg::Statement kDeliveryPreview{"deliveries_preview", R"sql(
UPDATE webhook_deliveries SET preview_service_id = $2, preview_url = NULLIF($3, '')
WHERE id = $1)sql"};
constexpr pg::Statement kDeleteDelivery{"deliveries_delete",
                                        "DELETE FROM webhook_deliveries WHERE id = $1"};
constexpr pg::Statement kListDeliveries{"deliveries_list", R"sql(
SELECT d.id, d.webhook_id, d.provider, d.delivery_id, d.event, coalesce(d.ref, ''),
       coalesce(d.commit_sha, ''), d.outcome, coalesce(d.build_id, ''),
       (extract(epoch FROM d.received_at) * 1000000)::bigint, coalesce(d.preview_service_id, ''),
       coalesce(d.preview_url, ''), coalesce(d.reason, '')
FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
WHERE w.service_id = $1 ORDER BY d.received_at DESC, d.id DESC LIMIT $2)sql"};

constexpr pg::Statement kAudit{"audit_insert", R"sql(
INSERT INTO audit_log (id, actor_user_id, actor_token_id, project_id, action, resource_id,
                       request_id, remote_addr, details)
VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), NULLIF($4, ''), $5, NULLIF($6, ''), NULLIF($7, ''),
        NULLIF($8, '')::inet, $9::jsonb))sql"};

constexpr pg::Statement kBeginIdem{"idempotency_begin", R"sql(
INSERT INTO idempotency_keys (user_id, key, method, path, request_sha256)
VALUES ($1, $2, $3, $4, decode($5, 'hex'))
ON CONFLICT (user_id, key) DO UPDATE SET
  method = EXCLUDED.method, path = EXCLUDED.path, request_sha256 = EXCLUDED.request_sha256,
  state = 'in_progress', response_status = NULL, response_body = NULL,
  created_at = now(), updated_at = now(), expires_at = now() + interval '24 hours'
  WHERE idempotency_keys.expires_at < now()
     OR (idempotency_keys.state = 'in_progress'
         AND idempotency_keys.updated_at < now() - interval '2 minutes'
         AND idempotency_keys.request_sha256 = EXCLUDED.request_sha256)
RETURNING 1)sql"};
constexpr pg::Statement kGetIdem{"idempotency_get", R"sql(
SELECT encode(request_sha256, 'hex'), state, coalesce(response_status, 0),
       coalesce(response_body, '')
FROM idempotency_keys WHERE user_id = $1 AND key = $2)sql"};
constexpr pg::Statement kCompleteIdem{"idempotency_complete", R"sql(
UPDATE idempotency_keys SET state = 'completed', response_status = $3, response_body = $4,
                            updated_at = now()
WHERE user_id = $1 AND key = $2)sql"};
constexpr pg::Statement kAbandonIdem{
    "idempotency_abandon",
    "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND state = 'in_progress'"};

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

absl::Time Micros(const pqxx::field& f) { return absl::FromUnixMicros(f.as<int64_t>()); }

Project RowToProject(const pqxx::row& r) {
  return {r[0].as<std::string>(), r[1].as<std::string>(),
          ParseRole(r[2].as<std::string>()).value_or(Role::kViewer), Micros(r[3])};
}

Service RowToService(const pqxx::row& r) {
  Service s;
  s.id = r[0].as<std::string>();
  s.project_id = r[1].as<std::string>();
  s.project_name = r[2].as<std::string>();
  s.name = r[3].as<std::string>();
  s.type = r[4].as<std::string>() == "worker" ? v1::SERVICE_TYPE_WORKER : v1::SERVICE_TYPE_WEB;
  s.revision = r[5].as<int64_t>();
  s.source.set_repo_url(r[6].as<std::string>());
  s.source.set_branch(r[7].as<std::string>());
  s.source.set_root_dir(r[8].as<std::string>());
  s.auto_deploy = r[9].as<bool>();
  s.build.set_strategy(r[10].as<std::string>() == "dockerfile" ? v1::BUILD_STRATEGY_DOCKERFILE
                                                               : v1::BUILD_STRATEGY_AUTO);
  s.build.set_dockerfile_path(r[11].as<std::string>());
  s.build.set_build_command(r[12].as<std::string>());
  s.run.set_start_command(r[13].as<std::string>());
  s.run.set_port(r[14].as<int>());
  s.run.set_instance_count(r[15].as<int>());
  s.run.set_memory_mb(r[16].as<int>());
  s.run.set_cpu_millis(r[17].as<int>());
  v1::HealthCheck& h = s.health_check;
  h.set_path(r[18].as<std::string>());
  h.set_port(r[19].as<int>());
  h.set_interval_s(r[20].as<int>());
  h.set_timeout_s(r[21].as<int>());
  h.set_healthy_threshold(r[22].as<int>());
  h.set_unhealthy_threshold(r[23].as<int>());
  h.set_start_period_s(r[24].as<int>());
  s.created_at = Micros(r[25]);
  s.updated_at = Micros(r[26]);
  // Base64 in SQL breaks lines every 76 characters.
  std::string sealed = r[27].as<std::string>();
  sealed.erase(std::remove(sealed.begin(), sealed.end(), '\n'), sealed.end());
  (void)absl::Base64Unescape(sealed, &s.repo_url_sealed);
  s.preview_of = r[28].as<std::string>();
  s.preview_number = r[29].as<int>();
  return s;
}

const char* TypeName(v1::ServiceType t) { return t == v1::SERVICE_TYPE_WORKER ? "worker" : "web"; }
const char* StrategyName(v1::BuildStrategy s) {
  return s == v1::BUILD_STRATEGY_DOCKERFILE ? "dockerfile" : "auto";
}

}  // namespace

std::string RoleName(Role r) {
  switch (r) {
    case Role::kOwner:
      return "owner";
    case Role::kAdmin:
      return "admin";
    case Role::kDeveloper:
      return "developer";
    case Role::kViewer:
      return "viewer";
  }
  return "viewer";
}

std::optional<Role> ParseRole(const std::string& name) {
  if (name == "owner") return Role::kOwner;
  if (name == "admin") return Role::kAdmin;
  if (name == "developer") return Role::kDeveloper;
  if (name == "viewer") return Role::kViewer;
  return std::nullopt;
}

absl::StatusOr<User> UpsertUser(pg::Tx& tx, const std::string& email,
                                const std::string& display_name) {
  pqxx::result r =
      tx.Exec(kUpsertUser, ids::New("usr"), absl::AsciiStrToLower(email), display_name);
  return User{r[0][0].as<std::string>(), r[0][1].as<std::string>(), r[0][2].as<std::string>()};
}

absl::StatusOr<User> UserByEmail(pg::Tx& tx, const std::string& email) {
  pqxx::result r = tx.Exec(kUserByEmail, absl::AsciiStrToLower(email));
  if (r.empty()) return absl::NotFoundError(absl::StrCat("no user has the email ", email));
  return User{r[0][0].as<std::string>(), r[0][1].as<std::string>(), r[0][2].as<std::string>()};
}

absl::StatusOr<NewToken> CreateToken(pg::Tx& tx, const std::string& user_id,
                                     const std::string& name) {
  NewToken t{ids::New("tok"), "c2d_" + http::Base64Url(crypto::RandomBytes(32))};
  tx.Exec(kInsertToken, t.id, user_id, name, t.token.substr(0, 10), crypto::Sha256Hex(t.token));
  return t;
}

absl::StatusOr<Principal> Authenticate(pg::Tx& tx, const std::string& token_sha256) {
  pqxx::result r = tx.Exec(kAuthenticate, token_sha256);
  if (r.empty()) return absl::NotFoundError("unknown, revoked or expired token");
  return Principal{r[0][1].as<std::string>(), r[0][0].as<std::string>()};
}

absl::Status TouchToken(pg::Tx& tx, const std::string& token_id) {
  tx.Exec(kTouchToken, token_id);
  return absl::OkStatus();
}

absl::StatusOr<Project> CreateProject(pg::Tx& tx, const std::string& name,
                                      const std::string& owner_user_id) {
  C2D_RETURN_IF_ERROR(CheckNameNotHeld(tx, name, ""));
  const std::string id = ids::New("prj");
  tx.Exec(kInsertProject, id, name);
  tx.Exec(kSetMember, id, owner_user_id, "owner");
  return GetProject(tx, id, owner_user_id);
}

absl::StatusOr<Project> GetProject(pg::Tx& tx, const std::string& id, const std::string& user_id) {
  pqxx::result r = tx.Exec(kGetProject, id, user_id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("project ", id, " does not exist"));
  return RowToProject(r[0]);
}

absl::StatusOr<std::vector<Project>> ListProjects(pg::Tx& tx, const std::string& user_id, int limit,
                                                  const std::string& after_name) {
  std::vector<Project> out;
  for (const auto& r : tx.Exec(kListProjects, user_id, after_name, limit)) {
    out.push_back(RowToProject(r));
  }
  return out;
}

absl::Status CheckNameNotHeld(pg::Tx& tx, const std::string& name, const std::string& project_id) {
  pqxx::result r = tx.Exec(kNameHeld, name, project_id);
  if (r.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("the name ", name,
                                                    " was another project's until recently; it is "
                                                    "held for that project until ",
                                                    r[0][0].as<std::string>()));
}

absl::Status RenameProject(pg::Tx& tx, const std::string& id, const std::string& name,
                           absl::Duration hold) {
  C2D_RETURN_IF_ERROR(CheckNameNotHeld(tx, name, id));
  tx.Exec(kPruneHolds);
  tx.Exec(kHoldName, id, absl::ToDoubleSeconds(hold));  // the old name, before it changes
  tx.Exec(kRenameProject, id, name);
  return absl::OkStatus();
}

absl::Status DeleteProject(pg::Tx& tx, const std::string& id) {
  tx.Exec(kDeleteProject, id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Member>> ListMembers(pg::Tx& tx, const std::string& project_id) {
  std::vector<Member> out;
  for (const auto& r : tx.Exec(kListMembers, project_id)) {
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(),
                   ParseRole(r[2].as<std::string>()).value_or(Role::kViewer)});
  }
  return out;
}

absl::Status SetMember(pg::Tx& tx, const std::string& project_id, const std::string& user_id,
                       Role role) {
  tx.Exec(kSetMember, project_id, user_id, RoleName(role));
  return absl::OkStatus();
}

absl::Status RemoveMember(pg::Tx& tx, const std::string& project_id, const std::string& user_id) {
  if (tx.Exec(kRemoveMember, project_id, user_id).affected_rows() == 0) {
    return absl::NotFoundError(
        absl::StrCat("user ", user_id.substr(0, 64), " is not a member of this project"));
  }
  auto owners = OwnerCount(tx, project_id);
  if (!owners.ok()) return owners.status();
  if (*owners == 0) {
    return absl::FailedPreconditionError("a project keeps at least one owner");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Role>> MemberRole(pg::Tx& tx, const std::string& project_id,
                                               const std::string& user_id) {
  pqxx::result r = tx.Exec(kMemberRole, project_id, user_id);
  if (r.empty()) return std::optional<Role>();
  auto role = ParseRole(r[0][0].as<std::string>());
  if (!role) return absl::InternalError("a member row holds an unknown role");
  return role;
}

absl::StatusOr<int> OwnerCount(pg::Tx& tx, const std::string& project_id) {
  return tx.Exec(kOwnerCount, project_id)[0][0].as<int>();
}

absl::Status InsertService(pg::Tx& tx, const Service& s) {
  const v1::HealthCheck& h = s.health_check;
  tx.Exec(kInsertService, s.id, s.project_id, s.name, TypeName(s.type), s.source.repo_url(),
          s.source.branch(), s.source.root_dir(), s.auto_deploy, StrategyName(s.build.strategy()),
          s.build.dockerfile_path(), s.build.build_command(), s.run.start_command(), s.run.port(),
          s.run.instance_count(), s.run.memory_mb(), s.run.cpu_millis(), h.path(), h.port(),
          h.interval_s(), h.timeout_s(), h.healthy_threshold(), h.unhealthy_threshold(),
          h.start_period_s(), absl::Base64Escape(s.repo_url_sealed), s.preview_of,
          s.preview_number);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Service>> FindPreview(pg::Tx& tx, const std::string& parent_id,
                                                   int number) {
  pqxx::result r = tx.Exec(kFindPreview, parent_id, number);
  if (r.empty()) return std::nullopt;
  return RowToService(r[0]);
}

absl::StatusOr<std::vector<std::string>> PreviewsOf(pg::Tx& tx, const std::string& parent_id) {
  std::vector<std::string> out;
  for (const auto& r : tx.Exec(kPreviewsOf, parent_id)) out.push_back(r[0].as<std::string>());
  return out;
}

absl::Status LockPreviews(pg::Tx& tx, const std::string& project_id) {
  tx.Exec(kLockPreviews, project_id);
  return absl::OkStatus();
}

absl::StatusOr<int> CountPreviews(pg::Tx& tx, const std::string& project_id) {
  return tx.Exec(kCountPreviews, project_id)[0][0].as<int>();
}

absl::StatusOr<Service> GetService(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kGetService, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("service ", id, " does not exist"));
  return RowToService(r[0]);
}

absl::StatusOr<std::vector<Service>> ListServices(pg::Tx& tx, const std::string& project_id,
                                                  int limit, const std::string& after_name) {
  std::vector<Service> out;
  for (const auto& r : tx.Exec(kListServices, project_id, after_name, limit)) {
    out.push_back(RowToService(r));
  }
  return out;
}

absl::Status UpdateService(pg::Tx& tx, const Service& s) {
  const v1::HealthCheck& h = s.health_check;
  tx.Exec(kUpdateService, s.id, s.name, TypeName(s.type), s.source.repo_url(), s.source.branch(),
          s.source.root_dir(), s.auto_deploy, StrategyName(s.build.strategy()),
          s.build.dockerfile_path(), s.build.build_command(), s.run.start_command(), s.run.port(),
          s.run.instance_count(), s.run.memory_mb(), s.run.cpu_millis(), h.path(), h.port(),
          h.interval_s(), h.timeout_s(), h.healthy_threshold(), h.unhealthy_threshold(),
          h.start_period_s(), absl::Base64Escape(s.repo_url_sealed));
  return absl::OkStatus();
}

absl::Status DeleteService(pg::Tx& tx, const std::string& id) {
  tx.Exec(kDeleteService, id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ServicesOfProject(pg::Tx& tx,
                                                           const std::string& project_id) {
  std::vector<std::string> out;
  for (const auto& r : tx.Exec(kServicesOfProject, project_id)) {
    out.push_back(r[0].as<std::string>());
  }
  return out;
}

absl::StatusOr<std::vector<v1::EnvVar>> ListEnv(pg::Tx& tx, const std::string& service_id) {
  std::vector<v1::EnvVar> out;
  for (const auto& r : tx.Exec(kListEnv, service_id)) {
    v1::EnvVar& v = out.emplace_back();
    v.set_key(r[0].as<std::string>());
    v.mutable_value()->set_key_id(r[1].as<std::string>());
    v.mutable_value()->set_wrapped_data_key(pqxx::binarystring(r[2]).str());
    v.mutable_value()->set_nonce(pqxx::binarystring(r[3]).str());
    v.mutable_value()->set_ciphertext(pqxx::binarystring(r[4]).str());
    v.set_secret(r[5].as<bool>());
  }
  return out;
}

absl::Status PutEnv(pg::Tx& tx, const std::string& service_id, const v1::EnvVar& var) {
  tx.Exec(kPutEnv, ids::New("env"), service_id, var.key(), var.value().key_id(),
          Hex(var.value().wrapped_data_key()), Hex(var.value().nonce()),
          Hex(var.value().ciphertext()), var.secret());
  return absl::OkStatus();
}

absl::StatusOr<bool> DeleteEnv(pg::Tx& tx, const std::string& service_id, const std::string& key) {
  return tx.Exec(kDeleteEnv, service_id, key).affected_rows() > 0;
}

absl::Status DeleteAllEnv(pg::Tx& tx, const std::string& service_id) {
  tx.Exec(kDeleteAllEnv, service_id);
  return absl::OkStatus();
}

absl::Status BumpRevision(pg::Tx& tx, const std::string& service_id) {
  tx.Exec(kBumpRevision, service_id);
  return absl::OkStatus();
}

namespace {

Webhook RowToWebhook(const pqxx::row& r) {
  return {r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
          crypto::Sealed{r[3].as<std::string>(), pqxx::binarystring(r[4]).str(),
                         pqxx::binarystring(r[5]).str(), pqxx::binarystring(r[6]).str()}};
}

}  // namespace

absl::Status InsertWebhook(pg::Tx& tx, const Webhook& w) {
  tx.Exec(kInsertWebhook, w.id, w.service_id, w.provider, w.secret.key_id,
          Hex(w.secret.wrapped_key), Hex(w.secret.nonce), Hex(w.secret.ciphertext));
  return absl::OkStatus();
}

absl::StatusOr<Webhook> GetWebhook(pg::Tx& tx, const std::string& id, const std::string& provider) {
  pqxx::result r = tx.Exec(kGetWebhook, id, provider);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("webhook ", id, " does not exist"));
  return RowToWebhook(r[0]);
}

absl::StatusOr<std::vector<Webhook>> ListWebhooks(pg::Tx& tx, const std::string& service_id) {
  std::vector<Webhook> out;
  for (const auto& r : tx.Exec(kListWebhooks, service_id)) out.push_back(RowToWebhook(r));
  return out;
}

absl::StatusOr<bool> InsertDelivery(pg::Tx& tx, const Delivery& d) {
  return !tx.Exec(kInsertDelivery, d.id, d.webhook_id, d.provider, d.delivery_id, d.event, d.ref,
                  d.commit_sha, d.outcome, d.reason)
              .empty();
}

absl::Status SetDeliveryBuild(pg::Tx& tx, const std::string& id, const std::string& build_id) {
  tx.Exec(kDeliveryBuild, id, build_id);
  return absl::OkStatus();
}

absl::Status SetDeliveryPreview(pg::Tx& tx, const std::string& id, const std::string& service_id,
                                const std::string& url) {
  tx.Exec(kDeliveryPreview, id, service_id, url);
  return absl::OkStatus();
}

absl::Status DeleteDelivery(pg::Tx& tx, const std::string& id) {
  tx.Exec(kDeleteDelivery, id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Delivery>> ListDeliveries(pg::Tx& tx, const std::string& service_id,
                                                     int limit) {
  std::vector<Delivery> out;
  for (const auto& r : tx.Exec(kListDeliveries, service_id, limit)) {
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                   r[3].as<std::string>(), r[4].as<std::string>(), r[5].as<std::string>(),
                   r[6].as<std::string>(), r[7].as<std::string>(), r[8].as<std::string>(),
                   Micros(r[9]), r[10].as<std::string>(), r[11].as<std::string>(),
                   r[12].as<std::string>()});
  }
  return out;
}

absl::Status Audit(pg::Tx& tx, const AuditEntry& e) {
  std::string addr = e.remote_addr;
  // "ip:port" or "[v6]:port" -> the address alone.
  if (!addr.empty() && addr[0] == '[') {
    addr = addr.substr(1, addr.find(']') - 1);
  } else if (size_t colon = addr.rfind(':');
             colon != std::string::npos && addr.find(':') == colon) {
    addr = addr.substr(0, colon);
  }
  tx.Exec(kAudit, ids::New("aud"), e.actor_user_id, e.actor_token_id, e.project_id, e.action,
          e.resource_id, e.request_id, addr, e.details.dump());
  return absl::OkStatus();
}

absl::StatusOr<std::optional<IdempotentReplay>> BeginIdempotency(
    pg::Tx& tx, const std::string& user_id, const std::string& key, const std::string& method,
    const std::string& path, const std::string& request_sha256) {
  if (!tx.Exec(kBeginIdem, user_id, key, method, path, request_sha256).empty()) {
    return std::nullopt;  // ours to run
  }
  pqxx::result r = tx.Exec(kGetIdem, user_id, key);
  if (r.empty()) return absl::AbortedError("the Idempotency-Key was just released; retry");
  if (r[0][0].as<std::string>() != request_sha256) {
    return absl::FailedPreconditionError("this Idempotency-Key was used for a different request");
  }
  if (r[0][1].as<std::string>() != "completed") {
    return absl::AbortedError("a request with this Idempotency-Key is still running");
  }
  return IdempotentReplay{r[0][2].as<int>(), r[0][3].as<std::string>()};
}

absl::Status CompleteIdempotency(pg::Tx& tx, const std::string& user_id, const std::string& key,
                                 int status, const std::string& body) {
  tx.Exec(kCompleteIdem, user_id, key, status, body);
  return absl::OkStatus();
}

absl::Status AbandonIdempotency(pg::Tx& tx, const std::string& user_id, const std::string& key) {
  tx.Exec(kAbandonIdem, user_id, key);
  return absl::OkStatus();
}

}  // namespace c2d::gateway
