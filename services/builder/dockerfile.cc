#include "services/builder/dockerfile.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace c2d::builder {
namespace {

struct Instruction {
  int line = 0;  // where it starts, 1-based
  std::string text;
};

// The escape character a `# escape=` parser directive sets ('\' by default).
char EscapeChar(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "#")) break;  // directives come first
    line = absl::StripAsciiWhitespace(line);
    std::string lower = absl::AsciiStrToLower(line);
    if (absl::StartsWith(lower, "escape")) {
      absl::string_view rest = absl::StripAsciiWhitespace(line.substr(6));
      if (absl::ConsumePrefix(&rest, "=")) {
        rest = absl::StripAsciiWhitespace(rest);
        if (rest == "`") return '`';
      }
    }
  }
  return '\\';
}

// Instructions with their continuation lines joined; comments dropped.
// Heredoc bodies are read as lines of their own: they can only make a check
// stricter, never hide an instruction.
std::vector<Instruction> Instructions(absl::string_view text) {
  const char escape = EscapeChar(text);
  std::vector<Instruction> out;
  Instruction current;
  int n = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++n;
    absl::string_view line = absl::StripTrailingAsciiWhitespace(raw);
    absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(line);
    if (absl::StartsWith(trimmed, "#")) continue;  // comments, also inside continuations
    if (current.text.empty()) {
      if (trimmed.empty()) continue;
      current.line = n;
    }
    if (!line.empty() && line.back() == escape) {
      absl::StrAppend(&current.text, line.substr(0, line.size() - 1), " ");
      continue;
    }
    absl::StrAppend(&current.text, line);
    out.push_back(std::move(current));
    current = Instruction();
  }
  if (!current.text.empty()) out.push_back(std::move(current));
  return out;
}

absl::Status Refuse(int line, absl::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat("Dockerfile line ", line, ": ", why));
}

// The leading "--flag[=value]" words of an instruction's arguments.
std::vector<std::string> Flags(absl::string_view args) {
  std::vector<std::string> flags;
  for (absl::string_view word : absl::StrSplit(args, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    if (!absl::StartsWith(word, "--")) break;
    flags.emplace_back(word);
  }
  return flags;
}

absl::Status CheckRun(int line, absl::string_view args) {
  for (const std::string& flag : Flags(args)) {
    std::string lower = absl::AsciiStrToLower(flag);
    if (!absl::StartsWith(lower, "--mount")) continue;
    if (absl::StrContains(lower, "$")) {
      return Refuse(line, "RUN --mount options may not use variables");
    }
    absl::string_view spec = lower;
    absl::ConsumePrefix(&spec, "--mount");
    absl::ConsumePrefix(&spec, "=");
    std::string type = "bind";  // buildah's default type
    for (absl::string_view kv : absl::StrSplit(spec, ',')) {
      if (absl::ConsumePrefix(&kv, "type=")) type = std::string(kv);
    }
    if (type != "tmpfs" && type != "secret") {
      return Refuse(line, absl::StrCat("RUN --mount=type=", type,
                                       " is not allowed on c2d (only tmpfs and secret mounts); "
                                       "use COPY or COPY --from to bring files into a step"));
    }
  }
  return absl::OkStatus();
}

// The sources of ADD, in shell form ("ADD [--flags] src... dest") or JSON form.
std::vector<std::string> AddSources(absl::string_view args) {
  std::vector<std::string> words;
  absl::string_view rest = absl::StripAsciiWhitespace(args);
  while (absl::StartsWith(rest, "--")) {
    size_t end = rest.find_first_of(" \t");
    rest =
        end == absl::string_view::npos ? "" : absl::StripLeadingAsciiWhitespace(rest.substr(end));
  }
  nlohmann::json j = nlohmann::json::parse(rest, nullptr, /*allow_exceptions=*/false);
  if (j.is_array()) {
    for (const auto& w : j) words.push_back(w.is_string() ? w.get<std::string>() : w.dump());
  } else {
    for (absl::string_view w : absl::StrSplit(rest, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      words.emplace_back(w);
    }
  }
  if (!words.empty()) words.pop_back();  // the destination
  return words;
}

absl::Status CheckAdd(int line, absl::string_view args) {
  for (const std::string& src : AddSources(args)) {
    if (absl::StrContains(src, "$")) {
      return Refuse(line, "ADD sources may not use variables; use COPY");
    }
    std::string lower = absl::AsciiStrToLower(src);
    if (absl::StrContains(lower, "://") || absl::StartsWith(lower, "git@")) {
      return Refuse(line, absl::StrCat("ADD ", src,
                                       ": ADD from a URL is not allowed on c2d; download it in a "
                                       "RUN step (curl, wget), which runs in the build's sandbox"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckInstruction(int line, absl::string_view text, bool nested) {
  text = absl::StripLeadingAsciiWhitespace(text);
  size_t end = text.find_first_of(" \t");
  std::string keyword = absl::AsciiStrToUpper(text.substr(0, end));
  absl::string_view args = end == absl::string_view::npos ? "" : text.substr(end + 1);
  if (keyword == "RUN") return CheckRun(line, args);
  if (keyword == "ADD") return CheckAdd(line, args);
  if (keyword == "ONBUILD" && !nested) return CheckInstruction(line, args, true);
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckDockerfile(absl::string_view text) {
  for (const Instruction& i : Instructions(text)) {
    if (absl::Status s = CheckInstruction(i.line, i.text, false); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace c2d::builder
