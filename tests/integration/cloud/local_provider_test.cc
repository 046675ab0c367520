// The local compute provider against the real engine and registry: an
// instance pinned by digest, published on a loopback port with PORT set,
// serving a file from its volume; found again by its labels; stopped and
// removed.

#include "libs/cloud/local_provider.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/http/client.h"
#include "libs/oci/registry.h"
#include "nlohmann/json.hpp"
#include "tests/support/pg_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;

oci::Registry TestRegistry() {
  return oci::Registry({.url = testing::RequireEnv("C2D_TEST_REGISTRY_URL"),
                        .username = testing::RequireEnv("C2D_TEST_REGISTRY_USER"),
                        .password = testing::RequireEnv("C2D_TEST_REGISTRY_PASSWORD")});
}

// The static stack's image, pinned by digest.
std::string StaticImage(oci::Registry& registry) {
  auto digest = registry.ResolveDigest("c2d/stacks/static", "1");
  REQUIRE(digest.ok());
  return absl::StrCat(registry.host(), "/c2d/stacks/static@", *digest);
}

TEST_CASE("local instances run pinned images with their port, volumes and labels", "[cloud]") {
  oci::Registry registry = TestRegistry();
  const std::string image = StaticImage(registry);
  const std::string volumes =
      absl::StrCat(testing::RequireEnv("C2D_TEST_TMP"), "/", ids::New("vols"));
  cloud::LocalProvider provider(
      {.engine_socket = testing::RequireEnv("C2D_TEST_ENGINE_SOCKET"),
       .registry = {testing::RequireEnv("C2D_TEST_REGISTRY_USER"),
                    testing::RequireEnv("C2D_TEST_REGISTRY_PASSWORD"), registry.host()},
       .volumes_dir = volumes});
  auto site = provider.VolumePath("site");
  REQUIRE(site.ok());
  std::ofstream(std::filesystem::path(*site) / "index.html") << "served from a volume\n";

  const std::string service = absl::AsciiStrToLower(ids::New("svc"));
  auto created = provider.Create({.name = absl::StrCat("c2d-", service, "-1"),
                                  .image = image,
                                  .port = 8080,
                                  .memory_bytes = 64 << 20,
                                  .cpu_millis = 250,
                                  .volumes = {{"site", "/srv"}},
                                  .labels = {{"c2d.service", service}}});
  INFO(created.status().ToString());
  REQUIRE(created.ok());
  CHECK(created->state == cloud::InstanceState::kCreated);
  CHECK(created->address.empty());

  REQUIRE(provider.Start(created->ref).ok());
  auto running = provider.Inspect(created->ref);
  REQUIRE(running.ok());
  CHECK(running->state == cloud::InstanceState::kRunning);
  REQUIRE(absl::StartsWith(running->address, "127.0.0.1:"));
  std::string body;
  CHECK(testing::WaitFor(20s, [&] {
    auto r = http::Send({.url = absl::StrCat("http://", running->address, "/"), .timeout = 2s});
    body = r.ok() ? r->body : "";
    return body == "served from a volume\n";
  }));

  // What runs can be rebuilt from the labels alone.
  auto listed = provider.List({{"c2d.service", service}});
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].ref == created->ref);
  CHECK((*listed)[0].address == running->address);

  REQUIRE(provider.Stop(created->ref, 5s).ok());
  CHECK(provider.Inspect(created->ref)->state == cloud::InstanceState::kExited);
  REQUIRE(provider.Remove(created->ref).ok());
  CHECK(provider.List({{"c2d.service", service}})->empty());
  CHECK(absl::IsNotFound(provider.Remove(created->ref)));
}

TEST_CASE("an instance the engine is stopping reads as stopping and then as exited", "[cloud]") {
  oci::Registry registry = TestRegistry();
  const std::string image = StaticImage(registry);
  cloud::LocalProvider provider(
      {.engine_socket = testing::RequireEnv("C2D_TEST_ENGINE_SOCKET"),
       .registry = {testing::RequireEnv("C2D_TEST_REGISTRY_USER"),
                    testing::RequireEnv("C2D_TEST_REGISTRY_PASSWORD"), registry.host()}});
  // Ignores SIGTERM, so a stop takes its whole grace period.
  auto created = provider.Create(
      {.name = absl::StrCat("c2d-", absl::AsciiStrToLower(ids::New("svc")), "-1"),
       .image = image,
       .command = {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"},
       .memory_bytes = 64 << 20,
       .cpu_millis = 250});
  REQUIRE(created.ok());
  REQUIRE(provider.Start(created->ref).ok());
  std::thread stopper([&] { (void)provider.Stop(created->ref, 4s); });
  bool stopping = testing::WaitFor(3s, [&] {
    auto i = provider.Inspect(created->ref);
    return i.ok() && i->state == cloud::InstanceState::kStopping;
  });
  stopper.join();
  CHECK(stopping);
  CHECK(provider.Inspect(created->ref)->state == cloud::InstanceState::kExited);
  CHECK(provider.Remove(created->ref).ok());
}

TEST_CASE("the local provider refuses unpinned images and bad volume names", "[cloud]") {
  cloud::LocalProvider provider({.engine_socket = testing::RequireEnv("C2D_TEST_ENGINE_SOCKET"),
                                 .volumes_dir = testing::RequireEnv("C2D_TEST_TMP")});
  auto unpinned = provider.Create({.name = "x", .image = "127.0.0.1:1/app:latest"});
  CHECK(absl::IsInvalidArgument(unpinned.status()));
  CHECK(absl::StrContains(unpinned.status().message(), "not pinned by digest"));
  CHECK(absl::IsInvalidArgument(provider.VolumePath("../etc").status()));
}

TEST_CASE("a network is made once, in c2d's address space, and removed when asked", "[cloud]") {
  cloud::LocalProvider provider({.engine_socket = testing::RequireEnv("C2D_TEST_ENGINE_SOCKET")});
  engine::Engine engine(testing::RequireEnv("C2D_TEST_ENGINE_SOCKET"));
  const std::string network = absl::StrCat("c2d-", absl::AsciiStrToLower(ids::New("prj")));
  REQUIRE(provider.EnsureNetwork(network).ok());
  REQUIRE(provider.EnsureNetwork(network).ok());  // again: nothing changes
  CHECK(*engine.NetworkExists(network));
  auto inspect = http::Send({.url = "http://d/v1.41/networks/" + network,
                             .unix_socket = testing::RequireEnv("C2D_TEST_ENGINE_SOCKET")});
  REQUIRE(inspect.ok());
  auto j = nlohmann::json::parse(inspect->body, nullptr, false);
  const std::string subnet = j["IPAM"]["Config"][0].value("Subnet", "");
  INFO(inspect->body);
  int a = 0, b = 0;
  REQUIRE(std::sscanf(subnet.c_str(), "%d.%d.", &a, &b) == 2);
  CHECK((a == 10 && b >= 128 && b < 192));  // c2d's container networks, 10.128.0.0/10
  REQUIRE(provider.RemoveNetwork(network).ok());
  CHECK_FALSE(*engine.NetworkExists(network));
  CHECK(provider.RemoveNetwork(network).ok());  // gone already: fine
}

}  // namespace
}  // namespace c2d
