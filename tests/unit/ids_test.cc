#include "libs/common/ids.h"

#include <catch2/catch.hpp>
#include <set>
#include <thread>

namespace c2d {
namespace {

TEST_CASE("ids carry their prefix, are unique, and sort by creation time", "[ids]") {
  std::set<std::string> seen;
  std::string previous;
  for (int i = 0; i < 1000; ++i) {
    std::string id = ids::New("prj");
    CHECK(ids::Valid(id, "prj"));
    CHECK(id.size() == 4 + 26);
    CHECK(seen.insert(id).second);
  }
  std::string a = ids::New("bld");
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::string b = ids::New("bld");
  CHECK(a.substr(0, 14) < b.substr(0, 14));
}

TEST_CASE("Valid rejects wrong prefixes, lengths and alphabets", "[ids]") {
  std::string id = ids::New("svc");
  CHECK_FALSE(ids::Valid(id, "prj"));
  CHECK_FALSE(ids::Valid(id.substr(0, id.size() - 1), "svc"));
  std::string lower = id;
  lower.back() = 'u';  // not in Crockford base32
  CHECK_FALSE(ids::Valid(lower, "svc"));
  CHECK_FALSE(ids::Valid("svc-01JD3Q8Z7X9K2M4N6P8R0T2V4W", "svc"));
}

}  // namespace
}  // namespace c2d
