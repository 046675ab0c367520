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

}  // namespace c2d::gateway
