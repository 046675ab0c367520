#include "libs/engine/cgroup.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace c2d::engine {
namespace {

namespace fs = std::filesystem;

// Every directory of `name` (and below) under each cgroup hierarchy, deepest first.
std::vector<fs::path> CgroupDirs(const std::string& name) {
  std::vector<fs::path> out;
  std::error_code ec;
  std::vector<fs::path> roots = {"/sys/fs/cgroup"};
  for (const auto& entry : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    if (entry.is_directory(ec) && fs::exists(entry.path() / "cgroup.procs", ec)) {
      roots.push_back(entry.path());
    }
  }
  for (const fs::path& root : roots) {
    fs::path dir = root / fs::path(name).relative_path();
    if (!fs::is_directory(dir, ec) || !fs::exists(dir / "cgroup.procs", ec)) continue;
    out.push_back(dir);
    for (const auto& sub : fs::recursive_directory_iterator(dir, ec)) {
      if (sub.is_directory(ec)) out.push_back(sub.path());
    }
  }
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
    return a.string().size() > b.string().size();
  });
  return out;
}

}  // namespace

absl::Status KillCgroup(const std::string& name, std::chrono::milliseconds timeout, int* killed) {
  if (name.empty() || name == "/" || name.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("refusing to kill cgroup \"", name, "\""));
  }
  *killed = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int alive = 0;
    for (const fs::path& dir : CgroupDirs(name)) {
      std::ifstream procs(dir / "cgroup.procs");
      pid_t pid = 0;
      while (procs >> pid) {
        if (pid > 1 && ::kill(pid, SIGKILL) == 0) {
          ++alive;
          ++*killed;
        }
      }
    }
    if (alive == 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(alive, " processes of cgroup ", name, " survive SIGKILL"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Empty cgroups can be removed; one still in use is left for next time.
  for (const fs::path& dir : CgroupDirs(name)) ::rmdir(dir.c_str());
  return absl::OkStatus();
}

}  // namespace c2d::engine
