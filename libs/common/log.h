#pragma once

// Structured logging: one JSON object per line on stderr, through spdlog.
//
//   log::Info("job claimed", {{"kind", kind}});
//   {"ts":"2026-11-26T10:00:00.123Z","level":"info","svc":"builder","msg":"job claimed",
//    "job_id":42,"kind":"build"}
//
// Fields of the enclosing log::Scope (request_id, job_id, …) are added to every
// line written on that thread. Never pass a secret as a field or message.

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace c2d::log {

enum class Level { kDebug, kInfo, kWarn, kError };

// Sets the process name ("svc" field) and the minimum level. Call once from
// main(); logging before it works, with svc "c2d" and level info.
void Init(absl::string_view service, Level min_level = Level::kInfo);

// Parses "debug", "info", "warn", "error"; anything else is info.
Level ParseLevel(absl::string_view text);

void Write(Level level, absl::string_view msg, const nlohmann::json& fields);
// Whether lines of `level` are written (to skip building their fields).
bool Enabled(Level level);

inline void Debug(absl::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  Write(Level::kDebug, msg, fields);
}
inline void Info(absl::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  Write(Level::kInfo, msg, fields);
}
inline void Warn(absl::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  Write(Level::kWarn, msg, fields);
}
inline void Error(absl::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  Write(Level::kError, msg, fields);
}

// Adds fields to every line this thread logs while the scope lives. Scopes
// nest; an inner field of the same name wins.
class Scope {
 public:
  explicit Scope(nlohmann::json fields);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  nlohmann::json saved_;
};

}  // namespace c2d::log
