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

// The root of each mounted hierarchy (v1 controllers, named, unified).
std::vector<fs::path> Roots() {
  std::error_code ec;
  std::vector<fs::path> roots;
  if (fs::exists("/sys/fs/cgroup/cgroup.procs", ec)) roots.push_back("/sys/fs/cgroup");
  for (const auto& entry : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    if (entry.is_directory(ec) && fs::exists(entry.path() / "cgroup.procs", ec)) {
      roots.push_back(entry.path());
    }
  }
  return roots;
}

bool WriteFile(const fs::path& file, const std::string& value) {
  std::ofstream out(file);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

std::string ReadFile(const fs::path& file) {
  std::ifstream in(file);
  std::string value;
  std::getline(in, value);
  return value;
}

// Every directory of `name` (and below) under each cgroup hierarchy, deepest first.
std::vector<fs::path> CgroupDirs(const std::string& name) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const fs::path& root : Roots()) {
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

absl::Status PrepareCgroup(const std::string& name, uid_t owner, gid_t group,
                           int64_t memory_bytes) {
  if (name.empty() || name == "/" || name.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("refusing cgroup \"", name, "\""));
  }
  for (const fs::path& root : Roots()) {
    const fs::path dir = root / fs::path(name).relative_path();
    std::error_code ec;
    if (!fs::is_directory(dir.parent_path(), ec)) continue;
    fs::create_directory(dir, ec);
    if (ec)
      return absl::InternalError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
    // cpuset (v1) starts a child with no cpus and no memory nodes.
    if (fs::exists(dir / "cpuset.cpus") && ReadFile(dir / "cpuset.cpus").empty()) {
      WriteFile(dir / "cpuset.cpus", ReadFile(dir.parent_path() / "cpuset.cpus"));
      WriteFile(dir / "cpuset.mems", ReadFile(dir.parent_path() / "cpuset.mems"));
    }
    if (::chown(dir.c_str(), owner, group) != 0) {
      return absl::InternalError(absl::StrCat("cannot hand ", dir.string(), " to uid ", owner));
    }
    if (memory_bytes > 0) {
      const std::string limit = std::to_string(memory_bytes);
      if (fs::exists(dir / "memory.limit_in_bytes")) {
        if (!WriteFile(dir / "memory.limit_in_bytes", limit)) {
          return absl::InternalError(absl::StrCat("cannot limit the memory of ", dir.string()));
        }
        // Swap counted too, where the kernel accounts it.
        if (fs::exists(dir / "memory.memsw.limit_in_bytes")) {
          WriteFile(dir / "memory.memsw.limit_in_bytes", limit);
        }
      }
      if (fs::exists(dir / "memory.max") && !WriteFile(dir / "memory.max", limit)) {
        return absl::InternalError(absl::StrCat("cannot limit the memory of ", dir.string()));
      }
    }
  }
  return absl::OkStatus();
}

bool ReachedMemoryLimit(const std::string& name) {
  for (const fs::path& root : Roots()) {
    const fs::path dir = root / fs::path(name).relative_path();
    int64_t peak = 0, limit = 0, failed = 0;
    if (std::ifstream in(dir / "memory.max_usage_in_bytes"); in >> peak) {
      std::ifstream(dir / "memory.limit_in_bytes") >> limit;
      std::ifstream(dir / "memory.failcnt") >> failed;
      if ((limit > 0 && peak >= limit) || failed > 0) return true;
    }
    std::ifstream events(dir / "memory.events");
    std::string key;
    int64_t v = 0;
    while (events >> key >> v) {
      if ((key == "max" || key == "oom_kill") && v > 0) return true;
    }
  }
  return false;
}

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
