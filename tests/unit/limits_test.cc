#include "services/gateway/limits.h"

#include <catch2/catch.hpp>

namespace c2d::gateway {
namespace {

TEST_CASE("a rate limiter allows its burst per key and says when to retry", "[limits]") {
  RateLimiter limiter(3, 0.5);
  for (int i = 0; i < 3; ++i) CHECK(limiter.Take("alice"));
  absl::Duration retry;
  CHECK_FALSE(limiter.Take("alice", &retry));
  CHECK(retry > absl::ZeroDuration());
  CHECK(retry <= absl::Seconds(2));
  CHECK(limiter.Take("bob"));  // a bucket of its own
}

TEST_CASE("slots are counted per key and given back with their handle", "[limits]") {
  SlotCounter slots(2);
  auto a = slots.Acquire("alice");
  auto b = slots.Acquire("alice");
  CHECK(a != nullptr);
  CHECK(b != nullptr);
  CHECK(slots.Acquire("alice") == nullptr);
  CHECK(slots.Acquire("bob") != nullptr);  // released at once: not kept
  CHECK(slots.InUse("bob") == 0);
  auto copy = a;
  a.reset();
  CHECK(slots.InUse("alice") == 2);  // a copy still holds it
  copy.reset();
  CHECK(slots.InUse("alice") == 1);
  CHECK(slots.Acquire("alice") != nullptr);
}

}  // namespace
}  // namespace c2d::gateway
