#pragma once

// The engine's progress stream for build, push and pull: one JSON object per
// line. Part of a build's output is a tenant's (RUN steps print anything),
// and the engine's own lines are read without trusting their shape
// (fuzzed: tools/fuzz engine_stream).

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "libs/engine/engine.h"
#include "libs/http/client.h"
#include "nlohmann/json.hpp"

namespace c2d::engine {

// Consumes a stream of JSON objects (one per line) as the engine sends for
// build, push and pull: "stream"/"status" lines go to on_log, an "error"
// ends it. Returns the first error message, if any, and collects aux IDs.
// Feed it through `splitter`, then Finish.
struct JsonStream {
  // A line of "stream" output longer than this is passed on in pieces.
  static constexpr size_t kMaxPartial = 64 * 1024;
  const LogFn* on_log = nullptr;
  std::string error;
  std::string aux_id;
  std::string partial;  // "stream" text after its last newline
  http::LineSplitter splitter{[this](absl::string_view line) { return OnLine(line); }};

  // Ends the stream: what is left of a partial line goes out.
  void Finish() {
    splitter.Finish();
    if (!partial.empty()) Emit(partial);
    partial.clear();
  }

  bool OnLine(absl::string_view line) {
    if (line.empty()) return true;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) {
      Emit(line);
      return true;
    }
    if (j.contains("error")) {
      error = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
      Emit(error);
      return true;
    }
    if (j.contains("aux") && j["aux"].is_object() && j["aux"].contains("ID") &&
        j["aux"]["ID"].is_string()) {
      aux_id = j["aux"]["ID"].get<std::string>();
    }
    if (j.contains("stream") && j["stream"].is_string()) {
      // A "stream" chunk is whatever one write of a build step held: several
      // lines, or part of one, continued by the next chunk.
      partial += j["stream"].get<std::string>();
      size_t start = 0;
      for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
        if (nl > start) Emit(absl::string_view(partial).substr(start, nl - start));
      }
      partial.erase(0, start);
      if (partial.size() > kMaxPartial) {
        Emit(partial);
        partial.clear();
      }
    }
    if (j.contains("status") && j["status"].is_string()) {
      // Push and pull progress: one line each.
      std::string text = j["status"].get<std::string>();
      if (j.contains("progress") && j["progress"].is_string()) {
        absl::StrAppend(&text, " ", j["progress"].get<std::string>());
      }
      for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) Emit(line);
    }
    return true;
  }
  void Emit(absl::string_view line) {
    if (on_log != nullptr && *on_log) (*on_log)(line);
  }
};

}  // namespace c2d::engine
