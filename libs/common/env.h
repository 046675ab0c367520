#pragma once

// Typed configuration from C2D_* environment variables.
//
// Every getter returns the default when the variable is unset or empty, and an
// InvalidArgument status that names the variable and the bad value when it is
// set to something that does not parse or is out of range. Services read all
// of their configuration at start-up and refuse to start on the first error.

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::env {

// The raw value, or `def` when unset or empty.
std::string GetString(absl::string_view name, absl::string_view def);

// A required string: InvalidArgument naming the variable when it is unset or empty.
absl::StatusOr<std::string> GetRequired(absl::string_view name);

// A decimal integer in [min, max].
absl::StatusOr<int64_t> GetInt(absl::string_view name, int64_t def, int64_t min, int64_t max);

// true/false, 1/0, yes/no, on/off (case-insensitive).
absl::StatusOr<bool> GetBool(absl::string_view name, bool def);

// A duration such as "250ms", "30s", "5m", "2h" (a bare number means seconds),
// in [min, max].
absl::StatusOr<std::chrono::milliseconds> GetDuration(absl::string_view name,
                                                      std::chrono::milliseconds def,
                                                      std::chrono::milliseconds min,
                                                      std::chrono::milliseconds max);

// Parses a duration with the syntax GetDuration accepts.
absl::StatusOr<std::chrono::milliseconds> ParseDuration(absl::string_view text);

// A host:port listen or dial address; the port must be 0–65535.
absl::StatusOr<std::string> GetAddress(absl::string_view name, absl::string_view def);

}  // namespace c2d::env
