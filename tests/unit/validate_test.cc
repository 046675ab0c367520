// Names of projects, services and volumes are DNS labels: they become
// hostnames and registry repository paths.

#include "libs/rpc/validate.h"

#include <catch2/catch.hpp>

namespace c2d::rpc {
namespace {

TEST_CASE("names follow the DNS label rules", "[validate]") {
  for (const char* ok : {"a", "web", "my-app", "a1", "app-2", "abc-def", "ab-c", "x1-y2-z3"}) {
    INFO(ok);
    CHECK(ValidName(ok));
  }
  CHECK(ValidName(std::string(39, 'a')));
  for (const char* bad :
       {"", "-", "app-", "-app", "1app", "App", "a_b", "a.b", "xn--abc", "ab--c", "a b", "é"}) {
    INFO(bad);
    CHECK_FALSE(ValidName(bad));
  }
  CHECK_FALSE(ValidName(std::string(40, 'a')));
  // "--" elsewhere than positions 3-4 is a plain label.
  CHECK(ValidName("a--b"));
  CHECK(ValidName("abc--d"));
}

}  // namespace
}  // namespace c2d::rpc
