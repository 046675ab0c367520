// Webhook deliveries: the signature check, the push payload and the pull
// request payload, for both providers. Never throws, never crashes; a delivery signed with another
// secret never verifies.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "libs/crypto/hash.h"
#include "services/gateway/webhook_payload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string provider = (data[0] & 1) ? "github" : "gitlab";
  const std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  // The first line is the signature header as sent, the rest the body.
  const size_t nl = input.find('\n');
  c2d::gateway::DeliveryHeaders headers;
  headers.signature = input.substr(0, nl);
  const std::string body = nl == std::string::npos ? "" : input.substr(nl + 1);
  const std::string secret = "fuzzing-secret-0123456789";
  if (c2d::gateway::VerifyDelivery(provider, headers, secret, body).ok()) {
    // Only the secret's own signature verifies.
    const std::string expected =
        provider == "github" ? "sha256=" + c2d::crypto::HmacSha256Hex(secret, body) : secret;
    if (headers.signature != expected) std::abort();
  }
  if (auto push = c2d::gateway::ParsePush(provider, body); push.ok()) {
    if (!push->commit.empty() && push->commit.size() != 40 && push->commit.size() != 64) {
      std::abort();
    }
  }
  if (auto pr = c2d::gateway::ParsePullRequest(provider, body); pr.ok()) {
    const auto& c = pr->head_commit;
    if (!c.empty() && c.size() != 40 && c.size() != 64) std::abort();
  }
  return 0;
}
