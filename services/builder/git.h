#pragma once

// The git operations of a build, run as `git` subprocesses with deadlines.
// Never prompts for credentials (GIT_TERMINAL_PROMPT=0); credentials inside
// a repository URL are never logged (RedactUrl).
//
// A repository URL is a tenant's input: before git runs, the URL is checked
// (libs/rpc/repo_url.h), its host resolved and every address checked, and
// git is pinned to the checked address (no second lookup, no redirects), so
// a build can neither read this machine's loopback services nor scan them.
// Local paths must resolve, symlinks followed, below the local repo root.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/rpc/repo_url.h"  // RedactUrl

namespace c2d::builder {

using rpc::RedactUrl;

struct GitOptions {
  // C2D_LOCAL_REPO_ROOT; empty: local paths are refused.
  std::string local_repo_root;
  std::chrono::milliseconds timeout{120'000};
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(absl::string_view line)> on_line;
};

// How git reaches a checked remote: the URL to give it, and the settings
// that pin it to the checked address.
struct GitRemote {
  std::string url;
  std::vector<std::string> config;  // "-c", "key=value" pairs for git
  std::map<std::string, std::string> env;
};

// A host's addresses as text ("192.0.2.1", "2001:db8::1").
using Resolver = std::function<absl::StatusOr<std::vector<std::string>>(
    const std::string& host, std::chrono::milliseconds timeout)>;
// The system's resolver (getaddrinfo) with a deadline.
absl::StatusOr<std::vector<std::string>> ResolveHost(const std::string& host,
                                                     std::chrono::milliseconds timeout);

// Checks `url` as described above, resolving with `resolve` (ResolveHost
// when empty). InvalidArgument when it is refused (the message says why),
// NotFound when its host does not resolve, DeadlineExceeded when resolving
// takes longer than `timeout`.
absl::StatusOr<GitRemote> PrepareRemote(const std::string& url, const std::string& local_repo_root,
                                        std::chrono::milliseconds timeout,
                                        const Resolver& resolve = nullptr);

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
