#include "libs/common/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace c2d {
namespace {

constexpr size_t kKeepOutput = 64 * 1024;

void KillGroup(pid_t pid) {
  ::kill(-pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      ::kill(-pid, SIGKILL);  // stragglers in the group
      return;
    }
    usleep(20'000);
  }
  ::kill(-pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
}

// The current environment with `command.env` over it, as KEY=value.
std::vector<std::string> EnvStrings(const Command& command) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq != absl::string_view::npos)
      merged[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : command.env) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(absl::StrCat(k, "=", v));
  return out;
}

// Starts the command in a process group of its own, stdin from /dev/null,
// stdout to `out_fd`, stderr to `err_fd`; posix_spawn's error code.
int Spawn(const Command& command, int out_fd, int err_fd, pid_t* pid) {
  std::vector<std::string> env = EnvStrings(command), argv = command.argv;
  std::vector<char*> envp, args;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (auto& s : argv) args.push_back(s.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  // Nothing else of this process reaches the child: a descriptor without
  // O_CLOEXEC (a listening socket of a library) would otherwise stay open in
  // whatever the child leaves running, holding its port.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (!command.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, command.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  int rc = posix_spawnp(pid, argv[0].c_str(), &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const Command& command) {
  if (command.argv.empty()) return absl::InvalidArgumentError("empty command");
  const std::string what = command.argv[0];
  // fds: stderr (and stdout, unless on_stdout takes it: out).
  int fds[2], out[2] = {-1, -1};
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  if (command.on_stdout && pipe2(out, O_CLOEXEC) != 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError("pipe failed");
  }
  pid_t pid = 0;
  const int rc = Spawn(command, out[1] >= 0 ? out[1] : fds[1], fds[1], &pid);
  close(fds[1]);
  if (out[1] >= 0) close(out[1]);
  if (rc != 0) {
    close(fds[0]);
    if (out[0] >= 0) close(out[0]);
    if (rc == ENOENT) return absl::NotFoundError(absl::StrCat(what, ": command not found"));
    return absl::InternalError(absl::StrCat("cannot start ", what, ": ", std::strerror(rc)));
  }

  CommandResult result;
  std::string pending;
  auto emit = [&](absl::string_view line) {
    if (command.on_line) command.on_line(line);
  };
  const auto deadline = std::chrono::steady_clock::now() + command.timeout;
  absl::Status stop = absl::OkStatus();
  std::vector<char> buf(64 * 1024);
  bool err_open = true, out_open = out[0] >= 0;
  while (err_open || out_open) {
    if (command.cancel != nullptr && command.cancel->load()) {
      stop = absl::CancelledError(absl::StrCat(what, ": cancelled"));
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      stop = absl::DeadlineExceededError(
          absl::StrCat(what, ": still running after ", command.timeout.count() / 1000, "s"));
      break;
    }
    pollfd p[2] = {{err_open ? fds[0] : -1, POLLIN, 0}, {out_open ? out[0] : -1, POLLIN, 0}};
    int ready = poll(p, 2, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (ready <= 0) continue;
    if (out_open && p[1].revents != 0) {
      ssize_t n = read(out[0], buf.data(), buf.size());
      // EOF: every writer (the child and its children) is gone.
      if (n <= 0) {
        out_open = false;
      } else if (absl::Status s = command.on_stdout(absl::string_view(buf.data(), n)); !s.ok()) {
        stop = s;
        break;
      }
    }
    if (!err_open || p[0].revents == 0) continue;
    ssize_t n = read(fds[0], buf.data(), buf.size());
    if (n <= 0) {
      err_open = false;
      continue;
    }
    result.output.append(buf.data(), n);
    if (result.output.size() > 2 * kKeepOutput)
      result.output.erase(0, result.output.size() - kKeepOutput);
    pending.append(buf.data(), n);
    size_t start = 0, nl;
    while ((nl = pending.find('\n', start)) != std::string::npos) {
      emit(absl::string_view(pending).substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
  }
  if (out[0] >= 0) close(out[0]);
  close(fds[0]);
  if (!stop.ok()) {
    KillGroup(pid);
    return stop;
  }
  if (!pending.empty()) emit(pending);
  int st = 0;
  waitpid(pid, &st, 0);
  result.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (result.output.size() > kKeepOutput)
    result.output.erase(0, result.output.size() - kKeepOutput);
  return result;
}

}  // namespace c2d
