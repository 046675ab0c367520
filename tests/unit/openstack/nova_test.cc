#include "libs/cloud/openstack/nova.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "libs/http/client.h"
#include "tests/unit/openstack/fake_cloud.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;
using testing::FakeOpenStack;

struct Fixture : FakeCloud {
  Nova nova{session};
};

TEST_CASE("a server is created with its labels as tags and metadata, and user data in base64",
          "[openstack]") {
  Fixture f;
  f.os.Answer("POST", "/compute/servers", 202,
              FakeOpenStack::Sample("nova/v2.100-server-create-resp.json"));
  auto id = f.nova.CreateServer({.name = "c2d-ins_1",
                                 .flavor_id = "1",
                                 .image_id = "70a599e0-31e7-49b7-b260-868f441e862b",
                                 .user_data = "#cloud-config\nruncmd: []\n",
                                 .network_ids = {"net-1"},
                                 .security_groups = {"c2d-web"},
                                 .labels = {{"c2d.instance", "ins_1"}, {"c2d.project", "prj_1"}},
                                 .server_group_id = "grp-1"});
  REQUIRE(id.ok());
  CHECK(*id == "f5dc173b-6804-445a-a6d8-c705dad5b5eb");  // the sample's
  auto sent = f.os.Requests("POST", "/compute/servers");
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].headers["openstack-api-version"] == "compute 2.67");
  const json body = json::parse(sent[0].body);
  const json& s = body["server"];
  CHECK(s["tags"] == json{"c2d.instance=ins_1", "c2d.project=prj_1"});
  CHECK(s["metadata"]["c2d.project"] == "prj_1");
  CHECK(s["user_data"] == http::Base64("#cloud-config\nruncmd: []\n"));
  CHECK(s["networks"] == json::parse(R"([{"uuid": "net-1"}])"));
  CHECK(s["security_groups"] == json::parse(R"([{"name": "c2d-web"}])"));
  CHECK(body["os:scheduler_hints"]["group"] == "grp-1");
}

TEST_CASE("volumes attach at boot by block device mapping and the image stays the boot disk",
          "[openstack]") {
  Fixture f;
  f.os.Answer("POST", "/compute/servers", 202,
              FakeOpenStack::Sample("nova/v2.100-server-create-resp.json"));
  REQUIRE(f.nova.CreateServer({.name = "db", .flavor_id = "1", .image_id = "img-1"}).ok());
  REQUIRE(f.nova
              .CreateServer(
                  {.name = "db", .flavor_id = "1", .image_id = "img-1", .volume_ids = {"v1", "v2"}})
              .ok());
  auto sent = f.os.Requests("POST", "/compute/servers");
  REQUIRE(sent.size() == 2);
  CHECK_FALSE(json::parse(sent[0].body)["server"].contains("block_device_mapping_v2"));
  const json body = json::parse(sent[1].body);
  const json& s = body["server"];
  CHECK(s["imageRef"] == "img-1");
  CHECK(s["block_device_mapping_v2"] == json::parse(R"([
    {"boot_index": 0, "uuid": "img-1", "source_type": "image", "destination_type": "local",
     "delete_on_termination": true},
    {"boot_index": -1, "uuid": "v1", "source_type": "volume", "destination_type": "volume",
     "delete_on_termination": false},
    {"boot_index": -1, "uuid": "v2", "source_type": "volume", "destination_type": "volume",
     "delete_on_termination": false}])"));
}

TEST_CASE("what Nova cannot take is refused before any call", "[openstack]") {
  Fixture f;
  auto bad_label = f.nova.CreateServer({.name = "x", .labels = {{"c2d.path", "a/b"}}});
  CHECK(absl::IsInvalidArgument(bad_label.status()));
  auto long_label = f.nova.CreateServer({.name = "x", .labels = {{"k", std::string(70, 'v')}}});
  CHECK(absl::IsInvalidArgument(long_label.status()));
  auto huge = f.nova.CreateServer({.name = "x", .user_data = std::string(60'000, 'u')});
  CHECK(absl::IsInvalidArgument(huge.status()));
  CHECK_THAT(std::string(huge.status().message()), Catch::Contains("65535"));
  CHECK(f.os.Requests("POST", "/compute").empty());
}

TEST_CASE("servers are listed by tag across pages", "[openstack]") {
  Fixture f;
  json page1 = json::parse(FakeOpenStack::Sample("nova/v2.100-servers-details-resp.json"));
  REQUIRE(page1.contains("servers_links"));
  page1["servers_links"] = {
      {{"rel", "next"}, {"href", f.os.base() + "/compute/servers/detail?limit=200&marker=m"}}};
  json page2 = {{"servers", {{{"id", "second"}, {"name", "b"}, {"status", "SHUTOFF"}}}}};
  f.os.FailNext("GET", "/compute/servers/detail", 200, page1.dump());
  f.os.Answer("GET", "/compute/servers/detail", 200, page2.dump());
  auto servers = f.nova.ListServers({{"c2d.project", "prj_1"}});
  REQUIRE(servers.ok());
  REQUIRE(servers->size() == page1["servers"].size() + 1);
  CHECK(servers->front().status == "ACTIVE");
  CHECK_FALSE(servers->front().addresses.empty());
  CHECK(servers->back().id == "second");
  auto calls = f.os.Requests("GET", "/compute/servers/detail");
  REQUIRE(calls.size() == 2);
  CHECK(absl::StrContains(calls[0].target, "tags=c2d.project%3Dprj_1"));
  CHECK(absl::StrContains(calls[1].target, "marker=m"));
}

TEST_CASE("waiting for a server ends at ACTIVE, at ERROR with its fault, or at the deadline",
          "[openstack]") {
  Fixture f;
  const std::string path = "/compute/servers/52415800-8b69-11e0-9b19-734f0000ffff";
  json active = json::parse(FakeOpenStack::Sample("nova/v2.100-server-get-resp.json"));
  json building = active;
  building["server"]["status"] = "BUILD";
  building["server"]["OS-EXT-STS:task_state"] = "spawning";
  SECTION("ACTIVE after BUILD") {
    f.os.FailNext("GET", path, 200, building.dump(), 2);
    f.os.Answer("GET", path, 200, active.dump());
    auto s = f.nova.WaitFor("52415800-8b69-11e0-9b19-734f0000ffff", "ACTIVE",
                            absl::Now() + absl::Seconds(5), absl::Milliseconds(10));
    REQUIRE(s.ok());
    CHECK(s->status == "ACTIVE");
    CHECK(s->launched_at.has_value());
    CHECK(f.os.Requests("GET", path).size() == 3);
  }
  SECTION("ERROR, with the fault the sample shows") {
    // The api-guide's example elides its details ("[snip]"), which is not JSON.
    std::string error = absl::StrReplaceAll(
        FakeOpenStack::Sample("nova/server-error-fault-example.txt"), {{"[snip]", "\"\""}});
    f.os.Answer("GET", path, 200, error);
    auto s = f.nova.WaitFor("52415800-8b69-11e0-9b19-734f0000ffff", "ACTIVE",
                            absl::Now() + absl::Seconds(5), absl::Milliseconds(10));
    CHECK(absl::IsFailedPrecondition(s.status()));
    CHECK_THAT(std::string(s.status().message()), Catch::Contains("No valid host was found"));
  }
  SECTION("the deadline, naming the last state") {
    f.os.Answer("GET", path, 200, building.dump());
    auto s = f.nova.WaitFor("52415800-8b69-11e0-9b19-734f0000ffff", "ACTIVE",
                            absl::Now() + absl::Milliseconds(100), absl::Milliseconds(20));
    CHECK(absl::IsDeadlineExceeded(s.status()));
    CHECK_THAT(std::string(s.status().message()), Catch::Contains("BUILD/spawning"));
  }
  SECTION("a server deleted meanwhile") {
    auto s = f.nova.WaitFor("52415800-8b69-11e0-9b19-734f0000ffff", "ACTIVE",
                            absl::Now() + absl::Seconds(5), absl::Milliseconds(10));
    CHECK(absl::IsNotFound(s.status()));  // the fake answers 404 for what it does not know
  }
}

TEST_CASE("start, stop and delete are idempotent", "[openstack]") {
  Fixture f;
  const std::string path = "/compute/servers/s1";
  const std::string conflict =
      R"({"conflictingRequest": {"code": 409, "message": "Cannot 'start' instance s1 while it is in vm_state active"}})";
  f.os.Answer("POST", path + "/action", 409, conflict);
  f.os.Answer("GET", path, 200, R"({"server": {"id": "s1", "status": "ACTIVE"}})");
  CHECK(f.nova.StartServer("s1").ok());             // runs already
  CHECK(absl::IsAborted(f.nova.StopServer("s1")));  // 409 and not SHUTOFF: an error
  const json stop = json::parse(f.os.Requests("POST", path + "/action").back().body);
  CHECK(stop.contains("os-stop"));
  f.os.Answer("POST", path + "/action", 202, "");
  CHECK(f.nova.RebootServer("s1", /*hard=*/true).ok());
  CHECK(json::parse(f.os.Requests("POST", path + "/action").back().body) ==
        json::parse(R"({"reboot": {"type": "HARD"}})"));
  CHECK(f.nova.DeleteServer("gone").ok());  // 404: deleted already
  f.os.Answer("DELETE", path, 204, "");
  CHECK(f.nova.DeleteServer("s1").ok());
}

}  // namespace
}  // namespace c2d::cloud::openstack
