#include "services/gateway/webhook_payload.h"

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

}  // namespace

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
