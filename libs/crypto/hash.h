#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace c2d::crypto {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

// SHA-256 of data that comes in pieces (streams too big to hold).
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(absl::string_view data);
  // Lower-case hex of everything given; once.
  std::string HexDigest();

 private:
  void* ctx_;  // EVP_MD_CTX
};

// Lower-case hex MD5 of `data`: only where a protocol asks for it (Swift's
// ETags), never for security.
std::string Md5Hex(absl::string_view data);

// Lower-case hex HMAC-SHA256 of `data` under `key` (GitHub webhook signatures).
std::string HmacSha256Hex(absl::string_view key, absl::string_view data);

// Equality in time independent of where the inputs differ (secrets,
// signatures); inputs of different lengths are unequal.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace c2d::crypto
