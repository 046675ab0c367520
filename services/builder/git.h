#pragma once

// The git operations of a build, run as `git` subprocesses with deadlines.
// Never prompts for credentials (GIT_TERMINAL_PROMPT=0); credentials inside
// a repository URL are never logged (RedactUrl).

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::builder {

struct GitOptions {
  std::chrono::milliseconds timeout{120'000};
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(absl::string_view line)> on_line;
};

// The URL with any user:password@ replaced by ***@.
std::string RedactUrl(absl::string_view url);

// The commit at the head of `branch`. NotFound when the branch does not exist;
// FailedPrecondition when the repository cannot be read (message says which).
absl::StatusOr<std::string> ResolveBranch(const std::string& url, const std::string& branch,
                                          const GitOptions& options);

// Fetches exactly `commit` (shallow) into the empty directory `dir` and checks
// it out. NotFound when the repository does not have the commit.
absl::Status CheckoutCommit(const std::string& url, const std::string& commit,
                            const std::string& dir, const GitOptions& options);

struct CommitInfo {
  std::string author;   // "Name <email>"
  std::string subject;  // first line of the message
};
absl::StatusOr<CommitInfo> ReadCommit(const std::string& dir, const GitOptions& options);

}  // namespace c2d::builder
