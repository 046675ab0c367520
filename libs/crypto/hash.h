#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace c2d::crypto {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

}  // namespace c2d::crypto
