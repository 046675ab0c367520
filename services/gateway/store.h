#pragma once

// The gateway's tables (users, api_tokens, projects, project_members,
// services, env_vars, audit_log, idempotency_keys): every statement the
// gateway runs against them.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/crypto/seal.h"
#include "libs/pg/pool.h"
#include "nlohmann/json.hpp"
#include "proto/c2d/v1/common.pb.h"

namespace c2d::gateway {

// ---- users and tokens

enum class Role { kViewer = 0, kDeveloper = 1, kAdmin = 2, kOwner = 3 };
std::string RoleName(Role r);
std::optional<Role> ParseRole(const std::string& name);

struct User {
  std::string id, email, display_name;
};

// Creates a user, or returns the existing one with that email.
absl::StatusOr<User> UpsertUser(pg::Tx& tx, const std::string& email,
                                const std::string& display_name);
absl::StatusOr<User> UserByEmail(pg::Tx& tx, const std::string& email);

// A new API token for `user_id`: the token itself (shown once), stored as
// its SHA-256 only.
struct NewToken {
  std::string id;
  std::string token;  // "c2d_" + base64url(32 random bytes)
};
absl::StatusOr<NewToken> CreateToken(pg::Tx& tx, const std::string& user_id,
                                     const std::string& name);

// Who a token belongs to; NotFound for an unknown, revoked or expired token
// or a disabled user.
struct Principal {
  std::string user_id;
  std::string token_id;
};
absl::StatusOr<Principal> Authenticate(pg::Tx& tx, const std::string& token_sha256);
// Records use, at most once a minute per token.
absl::Status TouchToken(pg::Tx& tx, const std::string& token_id);

// ---- projects and members

struct Project {
  std::string id, name;
  Role role = Role::kViewer;  // the caller's
  absl::Time created_at;
};

// The project and its first owner, in `tx`. AlreadyExists when the name is taken.
absl::StatusOr<Project> CreateProject(pg::Tx& tx, const std::string& name,
                                      const std::string& owner_user_id);
// NotFound unless the project is live and `user_id` is a member.
absl::StatusOr<Project> GetProject(pg::Tx& tx, const std::string& id, const std::string& user_id);
// The user's projects, by name; `page_token` is the last name of the previous page.
absl::StatusOr<std::vector<Project>> ListProjects(pg::Tx& tx, const std::string& user_id, int limit,
                                                  const std::string& after_name);
// Renames the project and holds its old name for it until now + `hold`.
// AlreadyExists when another live project has the name; FailedPrecondition
// when another project holds it.
absl::Status RenameProject(pg::Tx& tx, const std::string& id, const std::string& name,
                           absl::Duration hold);
// FailedPrecondition (saying until when) when a project other than
// `project_id` ("" for a new one) holds `name` after a rename.
absl::Status CheckNameNotHeld(pg::Tx& tx, const std::string& name, const std::string& project_id);
absl::Status DeleteProject(pg::Tx& tx, const std::string& id);

struct Member {
  std::string user_id, email;
  Role role;
};
absl::StatusOr<std::vector<Member>> ListMembers(pg::Tx& tx, const std::string& project_id);
absl::Status SetMember(pg::Tx& tx, const std::string& project_id, const std::string& user_id,
                       Role role);
// FailedPrecondition when it would leave the project without an owner.
absl::Status RemoveMember(pg::Tx& tx, const std::string& project_id, const std::string& user_id);
absl::StatusOr<int> OwnerCount(pg::Tx& tx, const std::string& project_id);
// The member's role (nullopt for a non-member), locking the row until the
// transaction ends.
absl::StatusOr<std::optional<Role>> MemberRole(pg::Tx& tx, const std::string& project_id,
                                               const std::string& user_id);

// ---- services

// A service row, in the shape of the REST API's service object (with
// defaults applied).
struct Service {
  std::string id, project_id, project_name, name;
  v1::ServiceType type = v1::SERVICE_TYPE_WEB;
  int64_t revision = 1;
  // repo_url (credentials masked when it has any), branch, root_dir.
  v1::Source source;
  // With credentials, the whole repo_url sealed: a serialized
  // v1::EncryptedValue (SealRepoUrl, service_body.h); "" without.
  std::string repo_url_sealed;
  bool auto_deploy = true;
  v1::BuildSettings build;
  v1::RunSettings run;
  v1::HealthCheck health_check;
  absl::Time created_at, updated_at;
  // A preview environment: the service it previews and the pull request's
  // number; "" and 0 otherwise.
  std::string preview_of;
  int preview_number = 0;
};

// AlreadyExists when the project has a live service of that name.
absl::Status InsertService(pg::Tx& tx, const Service& s);
// NotFound unless live; the project must be live too.
absl::StatusOr<Service> GetService(pg::Tx& tx, const std::string& id);
absl::StatusOr<std::vector<Service>> ListServices(pg::Tx& tx, const std::string& project_id,
                                                  int limit, const std::string& after_name);
// Writes every field of `s` and bumps its revision.
absl::Status UpdateService(pg::Tx& tx, const Service& s);
absl::Status DeleteService(pg::Tx& tx, const std::string& id);
absl::StatusOr<std::vector<std::string>> ServicesOfProject(pg::Tx& tx,
                                                           const std::string& project_id);
// The live preview of `parent_id` for pull request `number`, if any.
absl::StatusOr<std::optional<Service>> FindPreview(pg::Tx& tx, const std::string& parent_id,
                                                   int number);
// The ids of `parent_id`'s live previews.
absl::StatusOr<std::vector<std::string>> PreviewsOf(pg::Tx& tx, const std::string& parent_id);
// Until the transaction ends, no other transaction makes a preview in the
// project: one that waited here then finds what this one made.
absl::Status LockPreviews(pg::Tx& tx, const std::string& project_id);
// How many live previews the project has.
absl::StatusOr<int> CountPreviews(pg::Tx& tx, const std::string& project_id);

// ---- env vars (values stay sealed here)

absl::StatusOr<std::vector<v1::EnvVar>> ListEnv(pg::Tx& tx, const std::string& service_id);
absl::Status PutEnv(pg::Tx& tx, const std::string& service_id, const v1::EnvVar& var);
// false when there was no such key.
absl::StatusOr<bool> DeleteEnv(pg::Tx& tx, const std::string& service_id, const std::string& key);
absl::Status DeleteAllEnv(pg::Tx& tx, const std::string& service_id);
// revision + 1 (every change of the service or its env vars).
absl::Status BumpRevision(pg::Tx& tx, const std::string& service_id);

// ---- webhooks (DESIGN point 21)

struct Webhook {
  std::string id, service_id, provider;  // github, gitlab
  crypto::Sealed secret;
};
absl::Status InsertWebhook(pg::Tx& tx, const Webhook& w);
// NotFound unless the hook exists for `provider` and its service is live.
absl::StatusOr<Webhook> GetWebhook(pg::Tx& tx, const std::string& id, const std::string& provider);
absl::StatusOr<std::vector<Webhook>> ListWebhooks(pg::Tx& tx, const std::string& service_id);

struct Delivery {
  std::string id, webhook_id, provider, delivery_id, event, ref, commit_sha, outcome, build_id;
  absl::Time received_at;
  // A pull request's: the preview it made or redeployed, and its URL.
  std::string preview_service_id, preview_url;
  std::string reason;  // why it was ignored
};
// false when (provider, delivery_id) was received before: a replay.
absl::StatusOr<bool> InsertDelivery(pg::Tx& tx, const Delivery& d);
absl::Status SetDeliveryBuild(pg::Tx& tx, const std::string& id, const std::string& build_id);
absl::Status SetDeliveryPreview(pg::Tx& tx, const std::string& id, const std::string& service_id,
                                const std::string& url);
absl::Status DeleteDelivery(pg::Tx& tx, const std::string& id);
absl::StatusOr<std::vector<Delivery>> ListDeliveries(pg::Tx& tx, const std::string& service_id,
                                                     int limit);

// ---- audit and idempotency

struct AuditEntry {
  std::string actor_user_id, actor_token_id, project_id;
  std::string action;  // <resource>.<verb>
  std::string resource_id, request_id, remote_addr;
  nlohmann::json details = nlohmann::json::object();
};
absl::Status Audit(pg::Tx& tx, const AuditEntry& e);

struct IdempotentReplay {
  int status = 0;
  std::string body;
};
// Claims (user, key) for this request. Returns nullopt when the request is
// new (the caller runs it and calls CompleteIdempotency), the stored
// response when it was completed before, FailedPrecondition when another
// request used the key, Aborted when the same request is still running.
absl::StatusOr<std::optional<IdempotentReplay>> BeginIdempotency(
    pg::Tx& tx, const std::string& user_id, const std::string& key, const std::string& method,
    const std::string& path, const std::string& request_sha256);
absl::Status CompleteIdempotency(pg::Tx& tx, const std::string& user_id, const std::string& key,
                                 int status, const std::string& body);
// Forgets a claim whose request failed before it changed anything.
absl::Status AbandonIdempotency(pg::Tx& tx, const std::string& user_id, const std::string& key);

}  // namespace c2d::gateway
