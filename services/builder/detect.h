#pragma once

// How a checked-out app is built (DESIGN §4, "Base images"): a Dockerfile
// the app brings, or one c2d writes on a stack image for the detected
// language.

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace c2d::builder {

// Stack image per language: C2D_STACK_<LANG> where set, otherwise the
// images tools/stacks builds into the local registry.
struct Stacks {
  std::map<std::string, std::string> images;  // "static", "python", "node", "go" → image

  // Defaults on `registry_host` (host:port), overridden by C2D_STACK_*.
  static Stacks FromEnv(const std::string& registry_host);
};

struct Plan {
  std::string language;    // "dockerfile", "static", "python", "node", "go"
  std::string reason;      // what was detected, for the build log
  std::string dockerfile;  // path inside the context of the Dockerfile to use
  // The Dockerfile c2d wrote, when it wrote one (empty for the app's own).
  std::string generated;
};

struct PlanRequest {
  std::string app_dir;  // the checked-out root_dir
  bool auto_strategy = true;
  std::string dockerfile_path = "Dockerfile";  // for the dockerfile strategy
  std::string build_command;                   // RUN after the sources are copied
  std::string start_command;                   // the service's run.start_command
};

// Decides how to build the app in `app_dir`. FailedPrecondition with a
// message a user can act on when nothing fits (e.g. "no Dockerfile at …",
// "cannot tell how to build this app: …").
absl::StatusOr<Plan> PlanBuild(const PlanRequest& request, const Stacks& stacks);

}  // namespace c2d::builder
