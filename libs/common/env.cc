#include "libs/common/env.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace c2d::env {
namespace {

absl::Status Bad(absl::string_view name, absl::string_view value, absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, "=\"", value, "\" is not valid: expected ", want));
}

// nullopt-free lookup: an empty string means unset.
std::string Raw(absl::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

std::string GetString(absl::string_view name, absl::string_view def) {
  std::string v = Raw(name);
  return v.empty() ? std::string(def) : v;
}

absl::StatusOr<std::string> GetRequired(absl::string_view name) {
  std::string v = Raw(name);
  if (v.empty()) return absl::InvalidArgumentError(absl::StrCat(name, " is not set"));
  return v;
}

absl::StatusOr<int64_t> GetInt(absl::string_view name, int64_t def, int64_t min, int64_t max) {
  std::string v = Raw(name);
  if (v.empty()) return def;
  int64_t out = 0;
  if (!absl::SimpleAtoi(v, &out) || out < min || out > max) {
    return Bad(name, v, absl::StrCat("an integer from ", min, " to ", max));
  }
  return out;
}

absl::StatusOr<bool> GetBool(absl::string_view name, bool def) {
  std::string v = absl::AsciiStrToLower(Raw(name));
  if (v.empty()) return def;
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  return Bad(name, Raw(name), "true or false");
}

absl::StatusOr<std::chrono::milliseconds> ParseDuration(absl::string_view text) {
  absl::string_view digits = text;
  int64_t scale_ms = 1000;
  auto ends_with = [&](absl::string_view suffix, int64_t scale) {
    if (digits.size() > suffix.size() && digits.substr(digits.size() - suffix.size()) == suffix) {
      digits.remove_suffix(suffix.size());
      scale_ms = scale;
      return true;
    }
    return false;
  };
  // "ms" before "s" and "m", since both are suffixes of it.
  ends_with("ms", 1) || ends_with("s", 1000) || ends_with("m", 60'000) || ends_with("h", 3'600'000);
  int64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n) || n < 0 || n > INT64_MAX / scale_ms) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a duration"));
  }
  return std::chrono::milliseconds(n * scale_ms);
}

absl::StatusOr<std::chrono::milliseconds> GetDuration(absl::string_view name,
                                                      std::chrono::milliseconds def,
                                                      std::chrono::milliseconds min,
                                                      std::chrono::milliseconds max) {
  std::string v = Raw(name);
  if (v.empty()) return def;
  auto d = ParseDuration(v);
  if (!d.ok() || *d < min || *d > max) {
    return Bad(name, v,
               absl::StrCat("a duration such as 500ms, 30s, 5m or 1h, from ", min.count(), "ms to ",
                            max.count(), "ms"));
  }
  return *d;
}

absl::StatusOr<std::string> GetAddress(absl::string_view name, absl::string_view def) {
  std::string v = GetString(name, def);
  size_t colon = v.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(v).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return Bad(name, v, "host:port, such as 127.0.0.1:7001");
  }
  return v;
}

}  // namespace c2d::env
