#include "libs/common/log.h"

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace c2d::log {
namespace {

struct State {
  std::shared_ptr<spdlog::logger> logger;
  std::string service = "c2d";
  Level min_level = Level::kInfo;
};

State& GlobalState() {
  static State* state = [] {
    auto* s = new State;
    // stderr, unbuffered per line; the pattern is the bare message because
    // the message is already the whole JSON object.
    s->logger = spdlog::stderr_logger_mt("c2d");
    s->logger->set_pattern("%v");
    s->logger->set_level(spdlog::level::trace);
    return s;
  }();
  return *state;
}

thread_local nlohmann::json scope_fields = nlohmann::json::object();

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void Init(absl::string_view service, Level min_level) {
  State& s = GlobalState();
  s.service = std::string(service);
  s.min_level = min_level;
}

Level ParseLevel(absl::string_view text) {
  if (text == "debug") return Level::kDebug;
  if (text == "warn") return Level::kWarn;
  if (text == "error") return Level::kError;
  return Level::kInfo;
}

bool Enabled(Level level) { return level >= GlobalState().min_level; }

void Write(Level level, absl::string_view msg, const nlohmann::json& fields) {
  State& s = GlobalState();
  if (level < s.min_level) return;
  nlohmann::json line = nlohmann::json::object();
  line["ts"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  line["level"] = LevelName(level);
  line["svc"] = s.service;
  line["msg"] = msg;
  for (const auto& [k, v] : scope_fields.items()) line[k] = v;
  if (fields.is_object()) {
    for (const auto& [k, v] : fields.items()) line[k] = v;
  }
  // Replace invalid UTF-8 rather than throw: a log line must never fail.
  s.logger->info(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Scope::Scope(nlohmann::json fields) : saved_(scope_fields) {
  for (const auto& [k, v] : fields.items()) scope_fields[k] = v;
}

Scope::~Scope() { scope_fields = std::move(saved_); }

}  // namespace c2d::log
