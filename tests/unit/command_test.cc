#include "libs/common/command.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "absl/strings/str_split.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;

TEST_CASE("commands report output lines and exit codes", "[command]") {
  std::vector<std::string> lines;
  auto r = RunCommand({.argv = {"sh", "-c", "echo one; echo two >&2; printf three; exit 3"},
                       .on_line = [&](absl::string_view l) { lines.emplace_back(l); }});
  REQUIRE(r.ok());
  CHECK(r->exit_code == 3);
  CHECK(lines == std::vector<std::string>{"one", "two", "three"});
  CHECK(r->output == "one\ntwo\nthree");

  auto env = RunCommand(
      {.argv = {"sh", "-c", "echo $C2D_T_VAR; pwd"}, .env = {{"C2D_T_VAR", "x"}}, .cwd = "/tmp"});
  REQUIRE(env.ok());
  CHECK(env->output == "x\n/tmp\n");
  CHECK(absl::IsNotFound(RunCommand({.argv = {"c2d-no-such-program"}}).status()));
}

TEST_CASE("a timeout or cancellation kills the whole process group", "[command]") {
  const auto start = std::chrono::steady_clock::now();
  // The grandchild (sleep) holds the pipe too: it must die with its parent.
  auto r = RunCommand({.argv = {"sh", "-c", "sleep 30 & sleep 30"}, .timeout = 300ms});
  CHECK(absl::IsDeadlineExceeded(r.status()));
  CHECK(std::chrono::steady_clock::now() - start < 10s);

  std::atomic<bool> cancel{false};
  std::thread t([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  auto c = RunCommand({.argv = {"sleep", "30"}, .timeout = 60s, .cancel = &cancel});
  t.join();
  CHECK(absl::IsCancelled(c.status()));
}

TEST_CASE("a command inherits no descriptor of c2d beyond its standard streams", "[command]") {
  // Inheritable descriptors (as a library's socket may be), numbered above
  // any the child opens itself.
  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  const int fds[2] = {fcntl(pipe_fds[0], F_DUPFD, 100), fcntl(pipe_fds[1], F_DUPFD, 100)};
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  REQUIRE(fds[0] >= 100);
  auto r = RunCommand({.argv = {"sh", "-c", "ls /proc/self/fd"}});
  close(fds[0]);
  close(fds[1]);
  REQUIRE(r.ok());
  // 0, 1, 2 and the one ls opens to read the directory.
  std::vector<std::string> open = absl::StrSplit(r->output, '\n', absl::SkipWhitespace());
  INFO(r->output);
  CHECK(open.size() <= 4);
  CHECK(std::find(open.begin(), open.end(), std::to_string(fds[0])) == open.end());
  CHECK(std::find(open.begin(), open.end(), std::to_string(fds[1])) == open.end());
}

}  // namespace
}  // namespace c2d
