#pragma once

// A child process for tests that need real process boundaries (several
// worker processes, SIGKILL, service start-up and SIGTERM).

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace c2d::testing {

class Subprocess {
 public:
  // Starts `argv` with the current environment plus `env`; stdout and stderr
  // go to `log_path`.
  Subprocess(std::vector<std::string> argv, const std::map<std::string, std::string>& env,
             std::string log_path);
  ~Subprocess();  // SIGKILLs and reaps the child if it still runs

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // The exit code (or 128+signal) once the child ends within `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // What the child has written so far.
  std::string Output() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

}  // namespace c2d::testing
