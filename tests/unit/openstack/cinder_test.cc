#include "libs/cloud/openstack/cinder.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "libs/cloud/openstack/nova.h"
#include "tests/unit/openstack/fake_cloud.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;
using testing::FakeOpenStack;

struct Fixture : FakeCloud {
  Cinder cinder{session};
  Nova nova{session};
};

TEST_CASE("a volume is made once, waited for until available, and deleted", "[openstack]") {
  Fixture f;
  f.os.Answer("GET", "/volumev3/volumes/detail", 200, R"({"volumes": []})");
  f.os.Answer("POST", "/volumev3/volumes", 202,
              FakeOpenStack::Sample("cinder/v3.69-volume-create-response.json"));
  auto made = f.cinder.EnsureVolume("c2d-vol_1", 10, {{"c2d.volume", "vol_1"}});
  REQUIRE(made.ok());
  CHECK(made->status == "creating");
  auto sent = f.os.Requests("POST", "/volumev3/volumes");
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].headers["openstack-api-version"] == "volume 3.67");
  const json body = json::parse(sent[0].body);
  CHECK(body["volume"]["size"] == 10);
  CHECK(body["volume"]["metadata"]["c2d.volume"] == "vol_1");

  // Found by name the second time: nothing made.
  json listed =
      json::parse(FakeOpenStack::Sample("cinder/v3.69-volumes-list-detailed-response.json"));
  listed["volumes"][0]["name"] = "c2d-vol_1";
  f.os.Answer("GET", "/volumev3/volumes/detail", 200, listed.dump());
  REQUIRE(f.cinder.EnsureVolume("c2d-vol_1", 10, {}).ok());
  CHECK(f.os.Requests("POST", "/volumev3/volumes").size() == 1);

  json shown = json::parse(FakeOpenStack::Sample("cinder/v3.69-volume-show-response.json"));
  const std::string id = shown["volume"]["id"];
  const std::string path = "/volumev3/volumes/" + id;
  f.os.FailNext("GET", path, 200, shown.dump());  // creating, as the sample says
  shown["volume"]["status"] = "available";
  f.os.Answer("GET", path, 200, shown.dump());
  auto available =
      f.cinder.WaitFor(id, "available", absl::Now() + absl::Seconds(5), absl::Milliseconds(10));
  REQUIRE(available.ok());
  CHECK(available->size_gb == 10);

  shown["volume"]["status"] = "error";
  f.os.Answer("GET", path, 200, shown.dump());
  auto failed =
      f.cinder.WaitFor(id, "available", absl::Now() + absl::Seconds(5), absl::Milliseconds(10));
  CHECK(absl::IsFailedPrecondition(failed.status()));

  f.os.Answer("DELETE", path, 202, "");
  CHECK(f.cinder.DeleteVolume(id).ok());
  CHECK(f.cinder.DeleteVolume("gone").ok());
}

TEST_CASE("a volume is attached through Nova once, and detached", "[openstack]") {
  Fixture f;
  const std::string path = "/compute/servers/s1/os-volume_attachments";
  f.os.Answer("GET", path, 200, R"({"volumeAttachments": []})");
  f.os.Answer("POST", path, 200,
              FakeOpenStack::Sample("nova/v2.89-attach-volume-to-server-resp.json"));
  REQUIRE(f.nova.AttachVolume("s1", "v1").ok());
  CHECK(json::parse(f.os.Requests("POST", path)[0].body)["volumeAttachment"]["volumeId"] == "v1");
  f.os.Answer("GET", path, 200, R"({"volumeAttachments": [{"volumeId": "v1", "serverId": "s1"}]})");
  REQUIRE(f.nova.AttachVolume("s1", "v1").ok());
  CHECK(f.os.Requests("POST", path).size() == 1);  // attached already
  CHECK(f.nova.DetachVolume("s1", "v1").ok());     // the fake's 404: not attached
}

}  // namespace
}  // namespace c2d::cloud::openstack
