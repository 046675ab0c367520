// Swift's client against the fake: the integrity checks it asks Swift for.

#include "libs/cloud/openstack/swift.h"

#include <catch2/catch.hpp>

#include "libs/crypto/hash.h"
#include "tests/unit/openstack/fake_cloud.h"

namespace c2d::cloud::openstack {
namespace {

TEST_CASE("swift: every PUT carries its MD5 as ETag and a damaged upload fails the commit",
          "[openstack]") {
  FakeCloud c;
  c.os.Answer("PUT", "/object-store/c2d-backups", 201, "");
  c.os.Answer("PUT", "/object-store/c2d-backups_segments", 201, "");
  c.os.Answer("HEAD", "/object-store/c2d-backups/db/x.dump", 404, "");
  c.os.Answer("PUT", "/object-store/c2d-backups/db/x.dump", 201, "");
  SwiftObjectStore store(c.session, {});
  auto w = store.Create("db/x.dump");
  REQUIRE(w.ok());
  REQUIRE((*w)->Write("hello, ").ok());
  REQUIRE((*w)->Write("backup").ok());
  auto info = (*w)->Commit();
  REQUIRE(info.ok());
  CHECK(info->sha256 == crypto::Sha256Hex("hello, backup"));
  auto puts = c.os.Requests("PUT", "/object-store/c2d-backups/db/x.dump");
  REQUIRE(puts.size() == 1);
  CHECK(puts[0].body == "hello, backup");
  CHECK(puts[0].headers.at("etag") == crypto::Md5Hex("hello, backup"));
  CHECK(puts[0].headers.at("x-object-meta-sha256") == info->sha256);

  // Swift's 422: what arrived does not match the ETag.
  c.os.FailNext("PUT", "/object-store/c2d-backups/db/x.dump", 422,
                "<html><h1>Unprocessable Entity</h1></html>");
  auto again = store.Create("db/x.dump");
  REQUIRE(again.ok());
  REQUIRE((*again)->Write("other").ok());
  CHECK(absl::IsDataLoss((*again)->Commit().status()));
}

}  // namespace
}  // namespace c2d::cloud::openstack
