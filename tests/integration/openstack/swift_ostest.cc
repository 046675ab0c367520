// Swift as the backup store, against the real Swift of tools/openstack-up:
// plain and large (SLO) objects written, read back with their checksum,
// listed, replaced and deleted without leaving segments behind; signed
// links (tempurl) that open one object to anyone for a while.

#include <catch2/catch.hpp>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/cloud/openstack/swift.h"
#include "libs/common/ids.h"
#include "libs/crypto/hash.h"
#include "libs/http/client.h"
#include "tests/integration/openstack/os_env.h"
#include "tests/support/pg_fixture.h"

namespace c2d::cloud::openstack {
namespace {

using testing::RequireEnv;

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(gen());
  return out;
}

// Writes `data` in pieces of 7,777 bytes (no multiple of any size here).
absl::StatusOr<objstore::ObjectInfo> Store(objstore::ObjectStore& store, const std::string& key,
                                           const std::string& data) {
  auto w = store.Create(key);
  if (!w.ok()) return w.status();
  for (size_t at = 0; at < data.size(); at += 7777) {
    if (auto s = (*w)->Write(absl::string_view(data).substr(at, 7777)); !s.ok()) return s;
  }
  return (*w)->Commit();
}

std::string Read(objstore::ObjectStore& store, const std::string& key) {
  std::string out;
  absl::Status s = store.Get(key, [&](absl::string_view b) {
    out.append(b.data(), b.size());
    return absl::OkStatus();
  });
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

struct Fixture {
  Session session{User()};
  const std::string container = "c2d-test-" + absl::AsciiStrToLower(ids::New("bk"));
  SwiftObjectStore store{
      session, {.container = container, .segment_size = 64 << 10, .read_chunk = 50 << 10}};
  // The segments of `key` still in the segment container.
  size_t Segments(const std::string& key) {
    SwiftObjectStore segments(session, {.container = store.SegmentContainer()});
    auto listed = segments.List(key + "/");
    REQUIRE(listed.ok());
    return listed->size();
  }
};

TEST_CASE("swift: a backup stored, listed, read back with its checksum and deleted",
          "[openstack]") {
  Fixture f;
  const std::string data = Bytes(40'000, 1);
  auto info = Store(f.store, "db-1/2026-12-01.dump", data);
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  CHECK(info->size == 40'000);
  CHECK(info->sha256 == crypto::Sha256Hex(data));
  CHECK(f.store.Stat("db-1/2026-12-01.dump")->sha256 == info->sha256);
  CHECK(Read(f.store, "db-1/2026-12-01.dump") == data);
  CHECK(
      objstore::ReadVerified(f.store, "db-1/2026-12-01.dump", info->sha256, [](absl::string_view) {
        return absl::OkStatus();
      }).ok());
  REQUIRE(Store(f.store, "db-1/2026-12-02.dump", "second").ok());
  REQUIRE(Store(f.store, "db-2/2026-12-01.dump", "other").ok());
  auto listed = f.store.List("db-1/");
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 2);
  CHECK(listed->at(0).key == "db-1/2026-12-01.dump");
  CHECK(listed->at(0).size == 40'000);
  CHECK(listed->at(1).key == "db-1/2026-12-02.dump");

  // Replaced behind c2d's back: the checksum says it is not the backup.
  REQUIRE(Store(f.store, "db-1/2026-12-01.dump", "tampered").ok());
  CHECK(
      absl::IsDataLoss(objstore::ReadVerified(f.store, "db-1/2026-12-01.dump", info->sha256,
                                              [](absl::string_view) { return absl::OkStatus(); })));
  REQUIRE(f.store.Delete("db-1/2026-12-01.dump").ok());
  CHECK(absl::IsNotFound(
      f.store.Get("db-1/2026-12-01.dump", [](absl::string_view) { return absl::OkStatus(); })));
  CHECK(f.store.Delete("db-1/2026-12-01.dump").ok());  // gone already: fine
  CHECK(absl::IsInvalidArgument(f.store.Create("../escape").status()));
  CHECK(absl::IsInvalidArgument(f.store.Delete("a/../b")));
}

TEST_CASE("swift: a large object goes as segments and a manifest and leaves none behind",
          "[openstack]") {
  Fixture f;
  // 300 KiB in 64 KiB segments: 5 segments, read back in 50 KiB ranges.
  const std::string data = Bytes(300 << 10, 2);
  auto info = Store(f.store, "db-3/big.dump", data);
  INFO(info.status().ToString());
  REQUIRE(info.ok());
  CHECK(f.Segments("db-3/big.dump") == 5);
  CHECK(f.store.Stat("db-3/big.dump")->size == 300 << 10);
  CHECK(Read(f.store, "db-3/big.dump") == data);
  CHECK(crypto::Sha256Hex(Read(f.store, "db-3/big.dump")) == info->sha256);

  // Replaced by a large one, then a small one: the old segments go.
  const std::string next = Bytes(130 << 10, 3);
  REQUIRE(Store(f.store, "db-3/big.dump", next).ok());
  CHECK(f.Segments("db-3/big.dump") == 3);
  CHECK(Read(f.store, "db-3/big.dump") == next);
  REQUIRE(Store(f.store, "db-3/big.dump", "small now").ok());
  CHECK(f.Segments("db-3/big.dump") == 0);
  REQUIRE(Store(f.store, "db-3/big.dump", data).ok());
  REQUIRE(f.store.Delete("db-3/big.dump").ok());
  CHECK(f.Segments("db-3/big.dump") == 0);

  // A writer dropped before Commit: no object, no segments.
  {
    auto w = f.store.Create("db-3/abandoned.dump");
    REQUIRE(w.ok());
    REQUIRE((*w)->Write(Bytes(200 << 10, 4)).ok());
    CHECK(f.Segments("db-3/abandoned.dump") == 3);
  }
  CHECK(f.Segments("db-3/abandoned.dump") == 0);
  CHECK(absl::IsNotFound(f.store.Stat("db-3/abandoned.dump").status()));
}

TEST_CASE("swift: a signed link opens its one object to anyone, large ones whole, until it expires",
          "[openstack]") {
  Session session{User()};
  const std::string container = "c2d-test-" + absl::AsciiStrToLower(ids::New("tu"));
  // As the provider keeps files for volumes: segments in the linked container.
  SwiftObjectStore store{
      session, {.container = container, .segment_size = 64 << 10, .segment_container = container}};
  const std::string small = Bytes(1'000, 3);
  const std::string large = Bytes(200'000, 4);
  REQUIRE(Store(store, "vol-a/small.rdb", small).ok());
  REQUIRE(Store(store, "vol-a/large.rdb", large).ok());
  auto get = [](const std::string& url) {  // no token: anyone
    auto r = http::Send({.url = url, .timeout = std::chrono::seconds(20)});
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    return *r;
  };
  const absl::Time expires = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 300);
  auto small_link = store.SignGet("vol-a/small.rdb", expires);
  INFO(small_link.status().ToString());
  REQUIRE(small_link.ok());
  http::Response got = get(small_link->url);
  CHECK(got.status == 200);
  CHECK(got.body == small);
  auto large_link = store.SignGet("vol-a/large.rdb", expires);
  REQUIRE(large_link.ok());
  got = get(large_link->url);
  CHECK(got.status == 200);
  CHECK(crypto::Sha256Hex(got.body) == crypto::Sha256Hex(large));

  // Its signature opens no other object, and a changed one opens nothing.
  std::string other = large_link->url;
  other.replace(other.find("large.rdb"), 9, "small.rdb");
  CHECK(get(other).status == 401);
  std::string forged = small_link->url;
  char& c = forged[forged.find("temp_url_sig=") + 13];
  c = c == '0' ? '1' : '0';
  CHECK(get(forged).status == 401);
  auto expired = store.SignGet("vol-a/small.rdb", absl::Now() - absl::Seconds(5));
  REQUIRE(expired.ok());
  CHECK(get(expired->url).status == 401);

  // The key is the container's: another process signs alike.
  SwiftObjectStore again{session, {.container = container, .segment_container = container}};
  auto same = again.SignGet("vol-a/small.rdb", expires);
  REQUIRE(same.ok());
  CHECK(same->signature == small_link->signature);
  REQUIRE(store.Delete("vol-a/small.rdb").ok());
  REQUIRE(store.Delete("vol-a/large.rdb").ok());
  CHECK(get(small_link->url).status != 200);
}

}  // namespace
}  // namespace c2d::cloud::openstack
