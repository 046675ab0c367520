#pragma once

// Runs a program to completion with a deadline, cancellation and its output
// delivered line by line (stdout and stderr merged, in order). The child gets
// its own process group, and the whole group is killed (SIGTERM, then
// SIGKILL after 2 s) on timeout or cancellation, so nothing it started is
// left running.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d {

struct Command {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH
  std::map<std::string, std::string> env;  // added to (or replacing in) the current environment
  std::string cwd;                         // empty = current directory
  std::chrono::milliseconds timeout{60'000};
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(absl::string_view line)> on_line;  // may be empty
  // When set, stdout goes here as raw bytes, in order (stderr alone makes
  // `output` and the lines); an error stops the command and is returned.
  std::function<absl::Status(absl::string_view bytes)> on_stdout;
};

struct CommandResult {
  int exit_code = 0;   // 128 + signal when killed by a signal
  std::string output;  // the last 64 KiB of output, for error messages
};

// The exit code is not judged here. Errors: DeadlineExceeded (timeout),
// Cancelled, NotFound (no such program), Internal (cannot spawn).
absl::StatusOr<CommandResult> RunCommand(const Command& command);

}  // namespace c2d
