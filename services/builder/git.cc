#include "services/builder/git.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>

#include <cstring>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "libs/common/command.h"
#include "libs/rpc/repo_url.h"
#include "libs/rpc/validate.h"

namespace c2d::builder {
namespace {

std::map<std::string, std::string> GitEnv() {
  return {
      {"GIT_TERMINAL_PROMPT", "0"},
      {"GIT_ASKPASS", "/bin/true"},
      {"LC_ALL", "C"},
      // No transport but the ones PrepareRemote checked (ext:: and fd:: run
      // commands; file is for the local repo root only).
      {"GIT_ALLOW_PROTOCOL", "https:http:ssh"},
      // Neither the host's proxies nor its git config steer a tenant's fetch.
      {"GIT_CONFIG_NOSYSTEM", "1"},
      {"http_proxy", ""},
      {"https_proxy", ""},
      {"HTTP_PROXY", ""},
      {"HTTPS_PROXY", ""},
      {"ALL_PROXY", ""},
      {"all_proxy", ""},
  };
}

// git with `remote`'s pins (when given) before `args`.
absl::StatusOr<CommandResult> Git(std::vector<std::string> args, const std::string& cwd,
                                  const GitOptions& options, const GitRemote* remote = nullptr) {
  std::vector<std::string> argv = {"git", "-c", "advice.detachedHead=false"};
  std::map<std::string, std::string> env = GitEnv();
  if (remote != nullptr) {
    argv.insert(argv.end(), remote->config.begin(), remote->config.end());
    for (const auto& [k, v] : remote->env) env[k] = v;
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand({.argv = std::move(argv),
                     .env = std::move(env),
                     .cwd = cwd,
                     .timeout = options.timeout,
                     .cancel = options.cancel,
                     .on_line = options.on_line});
}

// The text form of an address getaddrinfo found.
std::string AddressText(const sockaddr* sa) {
  char text[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, text, sizeof(text));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, text, sizeof(text));
  }
  return text;
}

absl::StatusOr<GitRemote> PrepareLocal(const rpc::RepoUrl& parsed,
                                       const std::string& local_repo_root) {
  // Symlinks followed: the repository itself, not the name it was given,
  // must lie below the root.
  char real[PATH_MAX], root[PATH_MAX];
  if (realpath(local_repo_root.c_str(), root) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("C2D_LOCAL_REPO_ROOT ", local_repo_root, " does not exist"));
  }
  if (realpath(parsed.path.c_str(), real) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read repository ", parsed.path, ": it does not exist"));
  }
  if (!absl::StartsWith(real, absl::StrCat(root, "/"))) {
    return absl::InvalidArgumentError(
        absl::StrCat("local path ", parsed.path, " leads outside C2D_LOCAL_REPO_ROOT"));
  }
  GitRemote remote;
  remote.url = real;
  remote.config = {"-c", "protocol.file.allow=always"};
  remote.env["GIT_ALLOW_PROTOCOL"] = "file";
  return remote;
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

// getaddrinfo has no deadline of its own: it runs on a thread that is left
// behind when late.
absl::StatusOr<std::vector<std::string>> ResolveHost(const std::string& host,
                                                     std::chrono::milliseconds timeout) {
  struct Result {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    int rc ABSL_GUARDED_BY(mu) = 0;
    std::vector<std::string> addrs ABSL_GUARDED_BY(mu);
  };
  auto result = std::make_shared<Result>();
  std::thread([host, result] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list);
    std::vector<std::string> addrs;
    for (addrinfo* a = list; rc == 0 && a != nullptr; a = a->ai_next) {
      if (std::string t = AddressText(a->ai_addr); !t.empty()) addrs.push_back(std::move(t));
    }
    if (list != nullptr) freeaddrinfo(list);
    absl::MutexLock lock(&result->mu);
    result->rc = rc;
    result->addrs = std::move(addrs);
    result->done = true;
  }).detach();
  absl::MutexLock lock(&result->mu);
  if (!result->mu.AwaitWithTimeout(absl::Condition(&result->done), absl::FromChrono(timeout))) {
    return absl::DeadlineExceededError(absl::StrCat("resolving ", host, " took too long"));
  }
  if (result->rc != 0 || result->addrs.empty()) {
    return absl::NotFoundError(
        absl::StrCat("host ", host, " does not resolve: ", gai_strerror(result->rc)));
  }
  return result->addrs;
}

absl::StatusOr<GitRemote> PrepareRemote(const std::string& url, const std::string& local_repo_root,
                                        std::chrono::milliseconds timeout,
                                        const Resolver& resolve) {
  auto parsed = rpc::ParseRepoUrl(url, local_repo_root);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("repository URL refused: ", parsed.status().message()));
  }
  if (parsed->kind == rpc::RepoUrl::Kind::kLocal) return PrepareLocal(*parsed, local_repo_root);
  auto addrs = resolve ? resolve(parsed->host, timeout) : ResolveHost(parsed->host, timeout);
  if (!addrs.ok()) return addrs.status();
  std::string pinned;
  for (const std::string& text : *addrs) {
    const std::string why = rpc::ForbiddenAddressLiteral(text);
    if (!why.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("repository URL refused: host ", parsed->host,
                                                     " resolves to ", text, ", ", why));
    }
    if (pinned.empty()) {
      pinned = absl::StrContains(text, ':') ? absl::StrCat("[", text, "]") : text;
    }
  }
  GitRemote remote;
  remote.url = url;
  // Redirects could lead anywhere, the host's loopback included.
  remote.config = {"-c", "http.followRedirects=false"};
  if (parsed->scheme == "ssh") {
    // ssh connects to the checked address but knows the host by its name.
    remote.env["GIT_SSH_COMMAND"] = absl::StrCat(
        "ssh -o BatchMode=yes -o ProxyCommand=none -o ProxyJump=none -o HostName=",
        absl::StrReplaceAll(pinned, {{"[", ""}, {"]", ""}}), " -o HostKeyAlias=", parsed->host);
  } else {
    const int port = parsed->port != 0 ? parsed->port : (parsed->scheme == "https" ? 443 : 80);
    remote.config.push_back("-c");
    remote.config.push_back(
        absl::StrCat("http.curloptResolve=", parsed->host, ":", port, ":", pinned));
  }
  return remote;
}

absl::StatusOr<std::string> ResolveBranch(const std::string& url, const std::string& branch,
                                          const GitOptions& options) {
  GitOptions quiet = options;
  quiet.on_line = nullptr;
  auto remote = PrepareRemote(url, options.local_repo_root, options.timeout);
  if (!remote.ok()) return remote.status();
  auto r = Git({"ls-remote", "--heads", "--", remote->url, absl::StrCat("refs/heads/", branch)}, "",
               quiet, &*remote);
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
  auto remote = PrepareRemote(url, options.local_repo_root, options.timeout);
  if (!remote.ok()) return remote.status();
  auto init = Git({"init", "-q", dir}, "", options);
  if (!init.ok()) return init.status();
  if (init->exit_code != 0) {
    return absl::InternalError(absl::StrCat("git init: ", LastLine(init->output)));
  }
  // Fetching from the URL directly (no remote to add) saves a git process.
  auto fetch = Git({"-C", dir, "fetch", "--depth", "1", "--no-tags", "--", remote->url, commit}, "",
                   options, &*remote);
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
