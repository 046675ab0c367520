#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace c2d::crypto {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

// Lower-case hex HMAC-SHA256 of `data` under `key` (GitHub webhook signatures).
std::string HmacSha256Hex(absl::string_view key, absl::string_view data);

// Equality in time independent of where the inputs differ (secrets,
// signatures); inputs of different lengths are unequal.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace c2d::crypto
