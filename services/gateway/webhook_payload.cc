#include "services/gateway/webhook_payload.h"

#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "libs/rpc/validate.h"
#include "services/gateway/api.h"

namespace c2d::gateway {

absl::Status VerifyDelivery(const std::string& provider, const DeliveryHeaders& headers,
                            const std::string& secret, const std::string& body) {
  if (provider == "github") {
    const std::string expected = "sha256=" + crypto::HmacSha256Hex(secret, body);
    if (!crypto::ConstantTimeEquals(headers.signature, expected)) {
      return absl::UnauthenticatedError("X-Hub-Signature-256 does not match the body");
    }
    return absl::OkStatus();
  }
  if (provider == "gitlab") {
    if (!crypto::ConstantTimeEquals(headers.signature, secret)) {
      return absl::UnauthenticatedError("X-Gitlab-Token does not match");
    }
    return absl::OkStatus();
  }
  return absl::UnauthenticatedError("unknown webhook provider");
}

namespace {

// The string member `key` of `o` ("" when absent or null).
absl::Status StringMember(const json& o, const char* key, std::string* out) {
  return GetString(o, key, "", out, 1024);
}

// The object member `key` of `o`: an empty object when absent or null.
absl::StatusOr<json> ObjectMember(const json& o, const std::string& key, const std::string& path) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return json::object();
  if (!it->is_object()) return FieldError(path, "must be an object");
  return *it;
}

// ObjectMember along a path of keys ("pull_request", "head", …).
absl::StatusOr<json> Path(const json& o, std::initializer_list<const char*> keys) {
  json at = o;
  std::string path;
  for (const char* k : keys) {
    path += path.empty() ? k : std::string(".") + k;
    auto next = ObjectMember(at, k, path);
    if (!next.ok()) return next.status();
    at = std::move(*next);
  }
  return at;
}

absl::Status IntegerMember(const json& o, const char* key, const std::string& path, int64_t* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) return FieldError(path, "must be an integer");
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::StatusOr<PullRequest> GitHubPullRequest(const json& j) {
  PullRequest pr;
  C2D_RETURN_IF_ERROR(StringMember(j, "action", &pr.action_name));
  C2D_RETURN_IF_ERROR(IntegerMember(j, "number", "number", &pr.number));
  C2D_ASSIGN_OR_RETURN(json head, Path(j, {"pull_request", "head"}));
  C2D_ASSIGN_OR_RETURN(json base, Path(j, {"pull_request", "base"}));
  C2D_ASSIGN_OR_RETURN(json head_repo, Path(head, {"repo"}));
  C2D_ASSIGN_OR_RETURN(json base_repo, Path(base, {"repo"}));
  std::string head_name, base_name;
  C2D_RETURN_IF_ERROR(StringMember(head, "ref", &pr.head_ref));
  C2D_RETURN_IF_ERROR(StringMember(head, "sha", &pr.head_commit));
  C2D_RETURN_IF_ERROR(StringMember(base, "ref", &pr.base_ref));
  C2D_RETURN_IF_ERROR(StringMember(head_repo, "full_name", &head_name));
  C2D_RETURN_IF_ERROR(StringMember(base_repo, "full_name", &base_name));
  pr.same_repository = !head_name.empty() && head_name == base_name;
  const std::string& a = pr.action_name;
  using A = PullRequest::Action;
  pr.action = a == "opened" || a == "reopened" ? A::kOpen
              : a == "synchronize"             ? A::kUpdate
              : a == "closed"                  ? A::kClose
                                               : A::kOther;
  return pr;
}

absl::StatusOr<PullRequest> GitLabMergeRequest(const json& j) {
  PullRequest pr;
  C2D_ASSIGN_OR_RETURN(json attrs, Path(j, {"object_attributes"}));
  C2D_ASSIGN_OR_RETURN(json last, Path(attrs, {"last_commit"}));
  C2D_RETURN_IF_ERROR(StringMember(attrs, "action", &pr.action_name));
  C2D_RETURN_IF_ERROR(IntegerMember(attrs, "iid", "object_attributes.iid", &pr.number));
  C2D_RETURN_IF_ERROR(StringMember(attrs, "source_branch", &pr.head_ref));
  C2D_RETURN_IF_ERROR(StringMember(attrs, "target_branch", &pr.base_ref));
  C2D_RETURN_IF_ERROR(StringMember(last, "id", &pr.head_commit));
  int64_t source = 0, target = 0;
  C2D_RETURN_IF_ERROR(
      IntegerMember(attrs, "source_project_id", "object_attributes.source_project_id", &source));
  C2D_RETURN_IF_ERROR(
      IntegerMember(attrs, "target_project_id", "object_attributes.target_project_id", &target));
  pr.same_repository = source != 0 && source == target;
  // An update without oldrev changed the title or labels, not the code.
  std::string oldrev;
  C2D_RETURN_IF_ERROR(StringMember(attrs, "oldrev", &oldrev));
  const std::string& a = pr.action_name;
  using A = PullRequest::Action;
  pr.action = a == "open" || a == "reopen"       ? A::kOpen
              : a == "update" && !oldrev.empty() ? A::kUpdate
              : a == "close" || a == "merge"     ? A::kClose
                                                 : A::kOther;
  return pr;
}

}  // namespace

absl::StatusOr<PullRequest> ParsePullRequest(const std::string& provider, const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError("the pull request payload is not a JSON object");
  }
  auto pr = provider == "gitlab" ? GitLabMergeRequest(j) : GitHubPullRequest(j);
  if (!pr.ok()) return pr.status();
  if (!rpc::IsCommitSha(pr->head_commit)) pr->head_commit.clear();
  return pr;
}

absl::StatusOr<Push> ParsePush(const std::string& provider, const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("the push payload is not a JSON object");
  Push p;
  std::string after;
  if (absl::Status s = StringMember(j, "ref", &p.ref); !s.ok()) return s;
  if (absl::Status s = StringMember(j, "after", &after); !s.ok()) return s;
  if (provider == "gitlab") {
    if (absl::Status s = StringMember(j, "checkout_sha", &after); !s.ok()) return s;
  }
  // A deleted branch's push names the all-zero commit.
  if (rpc::IsCommitSha(after) && after.find_first_not_of('0') != std::string::npos) {
    p.commit = after;
  }
  return p;
}

}  // namespace c2d::gateway
