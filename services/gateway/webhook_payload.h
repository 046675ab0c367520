#pragma once

// What a webhook delivery says, checked before anything acts on it: whether
// the provider signed it with the hook's secret, and which branch and commit
// a push names. Pure functions over untrusted bytes (fuzzed).

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace c2d::gateway {

// The headers that authenticate and identify a delivery, by provider.
struct DeliveryHeaders {
  std::string signature;  // GitHub: X-Hub-Signature-256; GitLab: X-Gitlab-Token
  std::string event;      // X-GitHub-Event / X-Gitlab-Event
  std::string delivery;   // X-GitHub-Delivery / X-Gitlab-Event-UUID
};

// OK when `headers.signature` proves the sender knows `secret`: GitHub's
// "sha256=" HMAC of the body, GitLab's token; compared in constant time.
// Unauthenticated otherwise, naming the header.
absl::Status VerifyDelivery(const std::string& provider, const DeliveryHeaders& headers,
                            const std::string& secret, const std::string& body);

struct Push {
  std::string ref;     // "refs/heads/main"
  std::string commit;  // 40 or 64 hex digits; "" when the push deleted the ref
};
// A push event's payload. InvalidArgument (with the field as FieldError's
// payload) for a body that is not a JSON object or whose ref, after or
// checkout_sha is not a string.
absl::StatusOr<Push> ParsePush(const std::string& provider, const std::string& body);

// A pull request (GitHub) or merge request (GitLab) event, as previews need
// it.
struct PullRequest {
  enum class Action { kOther, kOpen, kUpdate, kClose };
  Action action = Action::kOther;
  std::string action_name;  // as the provider said it, for the delivery log
  int64_t number = 0;       // GitHub's number, GitLab's iid
  std::string head_ref;     // the branch with the changes
  std::string head_commit;  // its newest commit (40 or 64 hex digits)
  std::string base_ref;     // the branch it would merge into
  // The changes come from a branch of the same repository, not a fork's.
  bool same_repository = false;
};
// GitHub `pull_request` (opened, reopened -> kOpen; synchronize -> kUpdate;
// closed -> kClose) and GitLab "Merge Request Hook" (open, reopen; update
// with new commits; close, merge). InvalidArgument (FieldError) for a body
// that is not a JSON object or whose fields have the wrong types.
absl::StatusOr<PullRequest> ParsePullRequest(const std::string& provider, const std::string& body);

}  // namespace c2d::gateway
