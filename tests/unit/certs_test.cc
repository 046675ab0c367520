// The renewal schedule of the certs service (DESIGN point 20): a third of
// the lifetime left, retries 1 h doubling to 24 h with jitter, and the CA's
// suggested window (RFC 9773) only ever moving a renewal earlier; the
// hostnames custom domains may have, and the record a user creates.

#include <catch2/catch.hpp>

#include "services/certs/domains.h"
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

TEST_CASE("a custom domain's hostname is a DNS name outside c2d's zones", "[certs]") {
  auto ok = [](const std::string& raw, const std::string& base = "c2d.example.net") {
    auto h = CustomHostname(raw, base);
    INFO(raw << ": " << h.status().ToString());
    REQUIRE(h.ok());
    return *h;
  };
  CHECK(ok("shop.example.com") == "shop.example.com");
  CHECK(ok("WWW.Example.COM.") == "www.example.com");
  CHECK(ok("a-b.x1.example.co") == "a-b.x1.example.co");
  CHECK(ok("example.com") == "example.com");
  CHECK(ok("c2d.example.net.evil.com") == "c2d.example.net.evil.com");
  CHECK(ok("notc2d.example.net") == "notc2d.example.net");
  CHECK(ok(std::string(63, 'a') + ".example.com").size() == 75);
  auto bad = [](const std::string& raw, const std::string& says,
                const std::string& base = "c2d.example.net") {
    auto h = CustomHostname(raw, base);
    INFO(raw);
    REQUIRE(absl::IsInvalidArgument(h.status()));
    CHECK_THAT(std::string(h.status().message()), Catch::Contains(says));
  };
  bad("", "is empty");
  bad("10.0.0.1", "IP address");
  bad("::1", "IP address");
  bad("*.example.com", "wildcard");
  bad("a.*.example.com", "the character '*'");
  bad("web.shop.c2d.example.net", "c2d's own domain");
  bad("C2D.example.net", "c2d's own domain");
  bad("app.localhost", "c2d's own domain");
  bad("app.localhost", "c2d's own domain", "localhost");
  bad("shop", "no dot");
  bad(std::string(64, 'a') + ".example.com", "max 63");
  bad(std::string(201 - 12, 'a') + ".example.com", "at most 200");
  bad("shop..example.com", "empty label");
  bad(".example.com", "empty label");
  bad("shop-.example.com", "hyphen");
  bad("shop example.com", "the character ' '");
  bad("shop.example.1", "top-level domain");
}

TEST_CASE("the record to create: a CNAME, or an A record at a zone's apex", "[certs]") {
  v1::DnsRecord r = RequiredRecord("shop.example.com", "web.shop.c2d.example.net", "198.51.100.4");
  CHECK(r.type() == "CNAME");
  CHECK(r.name() == "shop.example.com");
  CHECK(r.value() == "web.shop.c2d.example.net");
  r = RequiredRecord("example.com", "web.shop.c2d.example.net", "198.51.100.4");
  CHECK(r.type() == "A");
  CHECK(r.value() == "198.51.100.4");
  // Without a known public address, a CNAME (the user's DNS may flatten it).
  CHECK(RequiredRecord("example.com", "web.shop.c2d.example.net", "").type() == "CNAME");
}

TEST_CASE("a missing record is checked again after 5 s doubling to 10 minutes", "[certs]") {
  CHECK(VerificationDelay(0) == absl::Seconds(5));
  CHECK(VerificationDelay(1) == absl::Seconds(10));
  CHECK(VerificationDelay(4) == absl::Seconds(80));
  CHECK(VerificationDelay(7) == absl::Minutes(10));
  CHECK(VerificationDelay(1000) == absl::Minutes(10));
  CHECK(VerificationDelay(-3) == absl::Seconds(5));
}

}  // namespace
}  // namespace c2d::certs
