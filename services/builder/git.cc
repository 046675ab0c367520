#include "services/builder/git.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/command.h"
#include "libs/rpc/validate.h"

namespace c2d::builder {
namespace {

const std::map<std::string, std::string>& GitEnv() {
  static const auto* env = new std::map<std::string, std::string>{
      {"GIT_TERMINAL_PROMPT", "0"},
      {"GIT_ASKPASS", "/bin/true"},
      {"LC_ALL", "C"},
      // Local paths and file:// URLs are the sample app's and the tests' sources.
      {"GIT_ALLOW_PROTOCOL", "https:http:ssh:git:file"},
  };
  return *env;
}

absl::StatusOr<CommandResult> Git(std::vector<std::string> args, const std::string& cwd,
                                  const GitOptions& options) {
  args.insert(args.begin(),
              {"git", "-c", "advice.detachedHead=false", "-c", "protocol.file.allow=always"});
  return RunCommand({.argv = std::move(args),
                     .env = GitEnv(),
                     .cwd = cwd,
                     .timeout = options.timeout,
                     .cancel = options.cancel,
                     .on_line = options.on_line});
}

// The last non-empty line of git's output, which carries its complaint.
std::string LastLine(const std::string& output) {
  std::string last;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) last = std::string(line);
  }
  return last;
}

}  // namespace

std::string RedactUrl(absl::string_view url) {
  size_t scheme = url.find("://");
  size_t at = url.find('@');
  size_t host_start = scheme == absl::string_view::npos ? 0 : scheme + 3;
  size_t slash = url.find('/', host_start);
  if (at == absl::string_view::npos || at < host_start ||
      (slash != absl::string_view::npos && at > slash)) {
    return std::string(url);
  }
  return absl::StrCat(url.substr(0, host_start), "***", url.substr(at));
}

absl::StatusOr<std::string> ResolveBranch(const std::string& url, const std::string& branch,
                                          const GitOptions& options) {
  GitOptions quiet = options;
  quiet.on_line = nullptr;
  auto r = Git({"ls-remote", "--heads", "--", url, absl::StrCat("refs/heads/", branch)}, "", quiet);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read repository ", RedactUrl(url), ": ", LastLine(r->output)));
  }
  for (absl::string_view line : absl::StrSplit(r->output, '\n')) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, '\t');
    if (parts.size() == 2 && parts[1] == absl::StrCat("refs/heads/", branch) &&
        rpc::IsCommitSha(parts[0])) {
      return std::string(parts[0]);
    }
  }
  return absl::NotFoundError(
      absl::StrCat("branch \"", branch, "\" does not exist in ", RedactUrl(url)));
}

absl::Status CheckoutCommit(const std::string& url, const std::string& commit,
                            const std::string& dir, const GitOptions& options) {
  auto init = Git({"init", "-q", dir}, "", options);
  if (!init.ok()) return init.status();
  if (init->exit_code != 0) {
    return absl::InternalError(absl::StrCat("git init: ", LastLine(init->output)));
  }
  // Fetching from the URL directly (no remote to add) saves a git process.
  auto fetch =
      Git({"-C", dir, "fetch", "--depth", "1", "--no-tags", "--", url, commit}, "", options);
  if (!fetch.ok()) return fetch.status();
  if (fetch->exit_code != 0) {
    std::string why = LastLine(fetch->output);
    if (absl::StrContains(why, "not our ref") ||
        absl::StrContains(why, "couldn't find remote ref") ||
        absl::StrContains(why, "no such remote ref")) {
      return absl::NotFoundError(
          absl::StrCat("commit ", commit, " does not exist in ", RedactUrl(url)));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot fetch from ", RedactUrl(url), ": ", why));
  }
  auto checkout = Git({"-C", dir, "checkout", "-q", "--detach", "FETCH_HEAD"}, "", options);
  if (!checkout.ok()) return checkout.status();
  if (checkout->exit_code != 0) {
    return absl::InternalError(absl::StrCat("git checkout: ", LastLine(checkout->output)));
  }
  return absl::OkStatus();
}

absl::StatusOr<CommitInfo> ReadCommit(const std::string& dir, const GitOptions& options) {
  GitOptions quiet = options;
  quiet.on_line = nullptr;
  auto r = Git({"-C", dir, "log", "-1", "--format=%an <%ae>%n%s"}, "", quiet);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return absl::InternalError(absl::StrCat("git log: ", LastLine(r->output)));
  std::vector<std::string> lines = absl::StrSplit(r->output, absl::MaxSplits('\n', 1));
  CommitInfo info;
  info.author = lines.empty() ? "" : lines[0];
  info.subject = lines.size() > 1 ? std::string(absl::StripAsciiWhitespace(lines[1])) : "";
  return info;
}

}  // namespace c2d::builder
