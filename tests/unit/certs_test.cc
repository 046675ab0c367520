// The renewal schedule of the certs service (DESIGN point 20): a third of
// the lifetime left, retries 1 h doubling to 24 h with jitter, and the CA's
// suggested window (RFC 9773) only ever moving a renewal earlier.

#include <catch2/catch.hpp>

#include "services/certs/internal_ca.h"
#include "services/certs/issuance.h"

namespace c2d::certs {
namespace {

TEST_CASE("a certificate is renewed with a third of its lifetime left", "[certs]") {
  const absl::Time start = absl::FromUnixSeconds(1'700'000'000);
  CHECK(RenewalTime(start, start + absl::Hours(24 * 90)) == start + absl::Hours(24 * 60));
  CHECK(RenewalTime(start, start + absl::Seconds(60)) == start + absl::Seconds(40));
}

TEST_CASE("failed renewals back off from 1 h to 24 h with jitter", "[certs]") {
  for (int i = 0; i < 20; ++i) {
    CHECK(RetryDelay(1) >= absl::Minutes(54));
    CHECK(RetryDelay(1) <= absl::Minutes(66));
    CHECK(RetryDelay(2) >= absl::Minutes(108));
    CHECK(RetryDelay(3) <= absl::Minutes(4 * 66));
    CHECK(RetryDelay(6) >= absl::Hours(24) * 0.9);  // 32 h capped to 24
    CHECK(RetryDelay(30) <= absl::Hours(24) * 1.1);
  }
}

TEST_CASE("the CA's renewal window moves a renewal earlier and never later", "[certs]") {
  const absl::Time t = absl::FromUnixSeconds(1'700'000'000);
  const absl::Time start = t + absl::Hours(10), end = t + absl::Hours(20);
  CHECK(AriRenewalTime(start, end, t + absl::Hours(30), 0.5) == t + absl::Hours(15));
  CHECK(AriRenewalTime(start, end, t + absl::Hours(30), 0.0) == start);
  CHECK(AriRenewalTime(start, end, t + absl::Hours(30), 1.0) == end);
  CHECK(AriRenewalTime(start, end, t + absl::Hours(12), 0.5) == t + absl::Hours(12));
  CHECK(AriRenewalTime(end, start, t + absl::Hours(30), 0.5) == t + absl::Hours(30));  // bad window
}

TEST_CASE("private names get c2d's own CA", "[certs]") {
  CHECK(IsPrivateName("web.shop.localhost", "internal.example.org"));
  CHECK(IsPrivateName("db.shop.internal.example.org", "internal.example.org"));
  CHECK_FALSE(IsPrivateName("web.shop.example.org", "internal.example.org"));
  CHECK_FALSE(IsPrivateName("localhost.example.org", "internal.example.org"));
  CHECK_FALSE(IsPrivateName("evilinternal.example.org", "internal.example.org"));
}

}  // namespace
}  // namespace c2d::certs
