// The OpenStack provider's files into volumes (WriteVolumeFile) against the
// fake: the file goes to Swift, its signed link to the volume's metadata and
// to the metadata of the server that has the volume attached, and it goes
// with the volume.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/cloud/openstack/provider.h"
#include "libs/crypto/hash.h"
#include "tests/unit/openstack/fake_cloud.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;

constexpr char kVolumeId[] = "6edbc2f4-1507-44f8-ac0d-eed1d2608d38";
constexpr char kTempUrlKey[] = "the-containers-key";

struct Fixture : FakeCloud {
  MemoryLedger ledger;
  OpenStackProvider provider{session, ledger, {.poll = absl::Milliseconds(10)}};
  std::string dump = (std::filesystem::temp_directory_path() /
                      absl::StrCat("c2d-volume-files-test-", getpid(), ".rdb"))
                         .string();

  Fixture() {
    std::ofstream(dump) << "REDIS0011 the dump";
    // The volume vol-data, attached to server srv-1.
    const json volume = {{"id", kVolumeId},
                         {"name", "vol-data"},
                         {"status", "in-use"},
                         {"attachments", {{{"server_id", "srv-1"}}}},
                         {"metadata", {{"c2d.volume", "vol-data"}}}};
    os.Answer("GET", "/volumev3/volumes/detail", 200, json{{"volumes", {volume}}}.dump());
    os.Answer("GET", absl::StrCat("/volumev3/volumes/", kVolumeId), 200,
              json{{"volume", volume}}.dump());
    os.Answer("POST", absl::StrCat("/volumev3/volumes/", kVolumeId, "/metadata"), 200, "{}");
    os.Answer("POST", "/compute/servers/srv-1/metadata", 200, "{}");
    os.Answer("PUT", "/object-store/c2d-volume-files", 201, "");
    os.Answer("PUT", "/object-store/c2d-volume-files/vol-data/restore.rdb", 201, "");
    // The container has no tempurl key until c2d sets one.
    os.Answer("POST", "/object-store/c2d-volume-files", 204, "");
    os.FailNext("HEAD", "/object-store/c2d-volume-files", 204, "");
    os.Answer("HEAD", "/object-store/c2d-volume-files", 204, "",
              {{"X-Container-Meta-Temp-Url-Key", kTempUrlKey}});
  }
  ~Fixture() { std::filesystem::remove(dump); }
};

TEST_CASE("openstack files into volumes: stored in Swift and linked from the metadata",
          "[openstack]") {
  Fixture f;
  const absl::Time before = absl::Now();
  REQUIRE(f.provider.WriteVolumeFile("vol-data", "restore.rdb", f.dump).ok());

  auto put = f.os.Requests("PUT", "/object-store/c2d-volume-files/vol-data/restore.rdb");
  REQUIRE(put.size() == 1);
  CHECK(put[0].body == "REDIS0011 the dump");
  // No segment container: links reach their own container only.
  CHECK(f.os.Requests("PUT", "/object-store/c2d-volume-files_segments").empty());
  // A key of c2d's for the container, since it had none.
  auto set_key = f.os.Requests("POST", "/object-store/c2d-volume-files");
  REQUIRE(set_key.size() == 1);
  CHECK(set_key[0].headers.at("x-container-meta-temp-url-key").size() == 64);

  // The volume's metadata holds the link for servers made from now on.
  auto volume_meta =
      f.os.Requests("POST", absl::StrCat("/volumev3/volumes/", kVolumeId, "/metadata"));
  REQUIRE(volume_meta.size() == 1);
  const std::string value =
      json::parse(volume_meta[0].body)["metadata"]["c2d.file:restore.rdb"].get<std::string>();
  std::vector<std::string> parts = absl::StrSplit(value, ' ');
  REQUIRE(parts.size() == 3);
  int64_t expires = 0;
  REQUIRE(absl::SimpleAtoi(parts[0], &expires));
  CHECK(expires >= absl::ToUnixSeconds(before + absl::Hours(6)));
  CHECK(expires <= absl::ToUnixSeconds(absl::Now() + absl::Hours(6)));
  // Swift's tempurl signature: HMAC-SHA256 of method, expiry and path.
  CHECK(parts[1] ==
        crypto::HmacSha256Hex(kTempUrlKey, absl::StrCat("GET\n", expires,
                                                        "\n/object-store/c2d-volume-files/vol-data/"
                                                        "restore.rdb")));
  CHECK(parts[2] == crypto::Sha256Hex("REDIS0011 the dump"));

  // The server that has the volume now gets it too, under the volume's name.
  auto server_meta = f.os.Requests("POST", "/compute/servers/srv-1/metadata");
  REQUIRE(server_meta.size() == 1);
  CHECK(json::parse(server_meta[0].body)["metadata"] ==
        json{{"c2d.file:vol-data:restore.rdb", value}});

  // The object goes with the volume.
  f.os.Answer("DELETE", "/object-store/c2d-volume-files/vol-data/restore.rdb", 204, "");
  f.os.Answer("DELETE", absl::StrCat("/volumev3/volumes/", kVolumeId), 202, "");
  REQUIRE(f.provider.DeleteVolume("vol-data").ok());
  CHECK(f.os.Requests("DELETE", "/object-store/c2d-volume-files/vol-data/restore.rdb").size() == 1);
  CHECK(f.os.Requests("DELETE", absl::StrCat("/volumev3/volumes/", kVolumeId)).size() == 1);
  auto left = f.ledger.All();
  REQUIRE(left.ok());
  CHECK(left->empty());
}

TEST_CASE("openstack files into volumes: a name that is not one file is refused before any call",
          "[openstack][security]") {
  Fixture f;
  for (const char* name : {"../etc/passwd", "a/b", ".c2d-fetched", "", "x y", "a:b"}) {
    INFO(name);
    CHECK(absl::IsInvalidArgument(f.provider.WriteVolumeFile("vol-data", name, f.dump)));
  }
  CHECK(f.os.Requests("PUT", "/object-store").empty());
  CHECK(f.os.Requests("POST", "/volumev3").empty());
}

}  // namespace
}  // namespace c2d::cloud::openstack
