// libs/engine and libs/oci against the real container engine and registry
// that tools/test starts: containers (create, start, logs, wait, stop,
// list by label, remove) and the registry client (digests, manifests and
// sizes, tags, delete, authentication errors).

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/engine/engine.h"
#include "libs/engine/tar.h"
#include "libs/oci/registry.h"
#include "tests/support/pg_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;

struct Platform {
  engine::Engine engine{testing::RequireEnv("C2D_TEST_ENGINE_SOCKET")};
  oci::RegistryOptions registry_options{
      .url = testing::RequireEnv("C2D_TEST_REGISTRY_URL"),
      .username = testing::RequireEnv("C2D_TEST_REGISTRY_USER"),
      .password = testing::RequireEnv("C2D_TEST_REGISTRY_PASSWORD")};
  oci::Registry registry{registry_options};
  std::string host = registry.host();
  std::string stack = absl::StrCat(host, "/c2d/stacks/static:1");
  engine::RegistryAuth auth{registry_options.username, registry_options.password, host};
};

TEST_CASE("containers run, log, stop and are found by label", "[engine]") {
  Platform p;
  REQUIRE(p.engine.Ping().ok());
  const std::string label = ids::New("t");
  auto id = p.engine.CreateContainer(
      {.image = p.stack,
       .cmd = {"/bin/sh", "-c", "echo out-1; echo err-1 >&2; echo out-2; exit 7"},
       .labels = {{"c2d.test", label}},
       .memory_bytes = 64 << 20});
  REQUIRE(id.ok());
  REQUIRE(p.engine.StartContainer(*id).ok());
  auto code = p.engine.WaitContainer(*id, 30s);
  REQUIRE(code.ok());
  CHECK(*code == 7);
  auto info = p.engine.InspectContainer(*id);
  REQUIRE(info.ok());
  CHECK_FALSE(info->running);
  CHECK(info->exit_code == 7);
  CHECK(info->labels["c2d.test"] == label);
  CHECK(info->started_at.has_value());

  std::vector<engine::LogLine> lines;
  REQUIRE(p.engine
              .Logs(*id, /*follow=*/false, std::nullopt,
                    [&](const engine::LogLine& l) {
                      lines.push_back(l);
                      return true;
                    })
              .ok());
  // Order holds within a stream; the engine may interleave the two streams.
  std::vector<std::string> out, err;
  for (const auto& l : lines) (l.stderr ? err : out).push_back(l.text);
  CHECK(out == std::vector<std::string>{"out-1", "out-2"});
  CHECK(err == std::vector<std::string>{"err-1"});

  auto listed = p.engine.ListContainers({{"c2d.test", label}});
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].id == *id);
  CHECK(p.engine.RemoveContainer(*id, false).ok());
  CHECK(p.engine.ListContainers({{"c2d.test", label}})->empty());
  CHECK(absl::IsNotFound(p.engine.InspectContainer(*id).status()));
}

TEST_CASE("following logs streams lines as they are written and stop ends the container",
          "[engine]") {
  Platform p;
  auto id = p.engine.CreateContainer({.image = p.stack,
                                      .cmd = {"/bin/sh", "-c",
                                              "trap 'echo bye; exit 0' TERM; i=0; while true; do "
                                              "i=$((i+1)); echo tick-$i; sleep 0.2; done"}});
  REQUIRE(id.ok());
  REQUIRE(p.engine.StartContainer(*id).ok());
  std::atomic<int> ticks{0};
  std::atomic<bool> stop{false};
  std::thread follower([&] {
    (void)p.engine.Logs(
        *id, /*follow=*/true, std::nullopt,
        [&](const engine::LogLine& l) {
          if (absl::StartsWith(l.text, "tick-")) ++ticks;
          return true;
        },
        &stop);
  });
  CHECK(testing::WaitFor(20s, [&] { return ticks >= 3; }));
  REQUIRE(p.engine.StopContainer(*id, 5s).ok());
  CHECK_FALSE(p.engine.InspectContainer(*id)->running);
  stop = true;
  follower.join();
  CHECK(p.engine.RemoveContainer(*id, true).ok());
  // Stopping or removing what is gone says so.
  CHECK(absl::IsNotFound(p.engine.RemoveContainer(*id, true)));
}

TEST_CASE("engine errors carry the engine's message", "[engine]") {
  Platform p;
  auto missing = p.engine.CreateContainer({.image = p.host + "/c2d/no-such-image:1"});
  CHECK(absl::IsNotFound(missing.status()));
  engine::TarWriter tar;
  tar.AddFile("Dockerfile", absl::StrCat("FROM ", p.stack, "\nRUN exit 42\n"));
  auto failed = p.engine.Build(tar.Finish(), {.tag = p.host + "/t/fail:1"});
  CHECK(absl::IsFailedPrecondition(failed.status()));
  CHECK(absl::StrContains(failed.status().message(), "42"));
  CHECK(absl::IsUnavailable(engine::Engine("/nonexistent/engine.sock").Ping()));
}

TEST_CASE("the registry client resolves, measures, lists and deletes images", "[oci]") {
  Platform p;
  REQUIRE(p.registry.Ping().ok());
  const std::string repo_path = absl::StrCat("t/", absl::AsciiStrToLower(ids::New("r").substr(16)));
  const std::string repository = absl::StrCat(p.host, "/", repo_path);
  engine::TarWriter tar;
  tar.AddFile("Dockerfile", absl::StrCat("FROM ", p.stack, "\nLABEL t=", repo_path, "\n"));
  REQUIRE(p.engine.Build(tar.Finish(), {.tag = repository + ":a"}).ok());
  REQUIRE(p.engine.Tag(repository + ":a", repository, "b").ok());
  REQUIRE(p.engine.Push(repository, "a", p.auth, nullptr, 60s).ok());
  REQUIRE(p.engine.Push(repository, "b", p.auth, nullptr, 60s).ok());

  auto digest = p.registry.ResolveDigest(repo_path, "a");
  REQUIRE(digest.ok());
  CHECK(absl::StartsWith(*digest, "sha256:"));
  CHECK(*p.registry.ResolveDigest(repo_path, *digest) == *digest);
  auto manifest = p.registry.GetManifest(repo_path, "a");
  REQUIRE(manifest.ok());
  CHECK(manifest->digest == *digest);
  CHECK(manifest->total_size > 0);
  CHECK_FALSE(manifest->layer_digests.empty());
  auto tags = p.registry.ListTags(repo_path);
  REQUIRE(tags.ok());
  std::sort(tags->begin(), tags->end());
  CHECK(*tags == std::vector<std::string>{"a", "b"});

  REQUIRE(p.registry.DeleteManifest(repo_path, *digest).ok());
  CHECK(absl::IsNotFound(p.registry.ResolveDigest(repo_path, "a").status()));
  CHECK(absl::IsNotFound(p.registry.DeleteManifest(repo_path, *digest)));
  CHECK(absl::IsNotFound(p.registry.ListTags("t/never-pushed").status()));

  oci::RegistryOptions wrong = p.registry_options;
  wrong.password = "wrong";
  CHECK(absl::IsUnauthenticated(oci::Registry(wrong).Ping()));
  oci::RegistryOptions down = p.registry_options;
  down.url = "http://127.0.0.1:1";
  down.attempts = 2;
  CHECK(absl::IsUnavailable(oci::Registry(down).Ping()));
}

}  // namespace
}  // namespace c2d
