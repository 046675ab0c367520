#include "services/builder/detect.h"

#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/env.h"
#include "libs/common/status.h"
#include "nlohmann/json.hpp"
#include "services/builder/dockerfile.h"
#include "services/builder/paths.h"

namespace c2d::builder {
namespace {

namespace fs = std::filesystem;

// A regular file `name` in the app (symlinks leading outside do not count).
bool Exists(const std::string& dir, const char* name) {
  return ResolveInside(dir, name, PathKind::kRegularFile, "file").ok();
}

// Anything named `name` in the app, a dangling or escaping symlink included.
bool Present(const std::string& dir, const char* name) {
  struct stat st {};
  return lstat((fs::path(dir) / name).c_str(), &st) == 0;
}

// The command of the Procfile's `web:` line, else of its `worker:` line
// (a worker service's app), if any.
std::string ProcfileWeb(const std::string& dir) {
  std::string worker;
  for (absl::string_view line : absl::StrSplit(ReadInside(dir, "Procfile"), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "web:")) return std::string(absl::StripAsciiWhitespace(line));
    if (worker.empty() && absl::ConsumePrefix(&line, "worker:")) {
      worker = std::string(absl::StripAsciiWhitespace(line));
    }
  }
  return worker;
}

// True when requirements.txt lists anything (not only comments/blank lines).
bool HasRequirements(const std::string& dir) {
  for (absl::string_view line : absl::StrSplit(ReadInside(dir, "requirements.txt"), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty() && line[0] != '#') return true;
  }
  return false;
}

// A JSON array for an exec-form CMD running `command` through the shell, so
// that $PORT and friends expand at run time.
std::string ShellCmd(const std::string& command) {
  return nlohmann::json::array({"/bin/sh", "-c", command}).dump();
}

}  // namespace

Stacks Stacks::FromEnv(const std::string& registry_host) {
  Stacks s;
  const std::map<std::string, std::string> defaults = {
      {"static", absl::StrCat(registry_host, "/c2d/stacks/static:1")},
      {"python", absl::StrCat(registry_host, "/c2d/stacks/python:3.11")},
      {"node", absl::StrCat(registry_host, "/c2d/stacks/node:18")},
      {"go", absl::StrCat(registry_host, "/c2d/stacks/go:1.19")},
  };
  for (const auto& [lang, image] : defaults) {
    s.images[lang] = env::GetString(absl::StrCat("C2D_STACK_", absl::AsciiStrToUpper(lang)), image);
  }
  return s;
}

namespace {

// Uses the app's own Dockerfile at `path`, named to the engine by its
// resolved path, so that the engine meets no symlink on the way to it.
absl::Status UseOwnDockerfile(const std::string& dir, const std::string& path, Plan& plan) {
  auto resolved = ResolveInside(dir, path, PathKind::kRegularFile, "dockerfile_path");
  if (!resolved.ok()) return absl::FailedPreconditionError(resolved.status().message());
  auto root = ResolveInside(dir, "", PathKind::kDirectory, "root_dir");
  if (!root.ok()) return absl::FailedPreconditionError(root.status().message());
  plan.language = "dockerfile";
  plan.dockerfile = resolved->lexically_relative(*root).generic_string();
  constexpr int64_t kMaxDockerfile = 1 << 20;
  std::string text = ReadInside(dir, plan.dockerfile, kMaxDockerfile + 1);
  if (static_cast<int64_t>(text.size()) > kMaxDockerfile) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is larger than 1 MiB"));
  }
  return CheckDockerfile(text);
}

// What detection found: the language, why, the start of the Dockerfile c2d
// writes, and the language's own start command ("" for none).
struct Detected {
  std::string language, reason, body, start;
};

Detected Python(const std::string& dir, const Stacks& stacks) {
  Detected d{"python",
             Exists(dir, "requirements.txt") ? "found requirements.txt: a Python app"
             : Exists(dir, "pyproject.toml") ? "found pyproject.toml: a Python app"
                                             : "found a Procfile and app.py: a Python app",
             absl::StrCat("FROM ", stacks.images.at("python"), "\nWORKDIR /app\nCOPY . /app\n"),
             ""};
  for (const char* entry : {"app.py", "main.py", "server.py"}) {
    if (Exists(dir, entry)) {
      d.start = absl::StrCat("exec python3 ", entry);
      break;
    }
  }
  if (HasRequirements(dir)) {
    absl::StrAppend(&d.body, "RUN python3 -m pip install --no-cache-dir -r requirements.txt\n");
  } else if (Exists(dir, "pyproject.toml")) {
    absl::StrAppend(&d.body, "RUN python3 -m pip install --no-cache-dir .\n");
  }
  return d;
}

// The first kind of app `dir` holds, in this order: Python, Node.js, Go, a
// static site. FailedPrecondition when it is none of them.
absl::StatusOr<Detected> Detect(const std::string& dir, bool procfile_web, const Stacks& stacks) {
  auto from = [&](const std::string& lang) {
    return absl::StrCat("FROM ", stacks.images.at(lang), "\n");
  };
  if (Exists(dir, "requirements.txt") || Exists(dir, "pyproject.toml") ||
      (procfile_web && (Exists(dir, "app.py") || Exists(dir, "main.py")))) {
    return Python(dir, stacks);
  }
  if (Exists(dir, "package.json")) {
    return Detected{"node", "found package.json: a Node.js app",
                    absl::StrCat(from("node"), "WORKDIR /app\nCOPY . /app\n",
                                 Exists(dir, "package-lock.json") ? "RUN npm ci --omit=dev\n"
                                                                  : "RUN npm install --omit=dev\n"),
                    "exec npm start"};
  }
  if (Exists(dir, "go.mod")) {
    return Detected{
        "go", "found go.mod: a Go app",
        absl::StrCat(from("go"), "WORKDIR /src\nCOPY . /src\nRUN go build -o /app/server .\n"),
        "exec /app/server"};
  }
  if (Exists(dir, "index.html")) {
    // The static stack's own CMD serves /srv on $PORT.
    return Detected{"static", "found index.html: a static site",
                    absl::StrCat(from("static"), "COPY . /srv\n"), ""};
  }
  return absl::FailedPreconditionError(
      "cannot tell how to build this app: add a Dockerfile, or one of Procfile, "
      "requirements.txt, pyproject.toml, package.json, go.mod, index.html");
}

}  // namespace

absl::StatusOr<Plan> PlanBuild(const PlanRequest& request, const Stacks& stacks) {
  const std::string& dir = request.app_dir;
  Plan plan;
  if (!request.auto_strategy) {
    C2D_RETURN_IF_ERROR(UseOwnDockerfile(dir, request.dockerfile_path, plan));
    plan.reason = absl::StrCat("using ", request.dockerfile_path, " (dockerfile strategy)");
    return plan;
  }
  if (Present(dir, "Dockerfile")) {  // a Dockerfile that leads outside is an error, not ignored
    C2D_RETURN_IF_ERROR(UseOwnDockerfile(dir, "Dockerfile", plan));
    plan.reason = "found a Dockerfile";
    return plan;
  }
  const std::string procfile_web = Exists(dir, "Procfile") ? ProcfileWeb(dir) : "";
  C2D_ASSIGN_OR_RETURN(Detected found, Detect(dir, !procfile_web.empty(), stacks));
  plan.language = found.language;
  plan.reason = found.reason;
  std::string body = std::move(found.body);
  if (!request.build_command.empty()) absl::StrAppend(&body, "RUN ", request.build_command, "\n");
  const std::string start = !request.start_command.empty() ? request.start_command
                            : !procfile_web.empty()        ? procfile_web
                                                           : found.start;
  if (!start.empty()) {
    absl::StrAppend(&body, "CMD ", ShellCmd(start), "\n");
  } else if (plan.language != "static") {
    return absl::FailedPreconditionError(absl::StrCat(
        "detected a ", plan.language,
        " app but no way to start it: add a Procfile with a web: line or set run.start_command"));
  }
  // build_command is the tenant's text inside a Dockerfile of ours.
  if (absl::Status s = CheckDockerfile(body); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("build_command: ", s.message()));
  }
  plan.dockerfile = "Dockerfile.c2d";
  plan.generated = std::move(body);
  return plan;
}

}  // namespace c2d::builder
