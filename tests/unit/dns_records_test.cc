// The DNS service's record rules and its diff against a backend zone,
// without PowerDNS.

#include <catch2/catch.hpp>

#include "services/dns/records.h"

namespace c2d::dns {
namespace {

RRset Set(const std::string& name, const std::string& type, std::vector<std::string> records,
          const std::string& tag = "c2d:me") {
  return RRset{name, type, 60, std::move(records), tag};
}

TEST_CASE("a zone diff replaces what differs and deletes only its own stale sets", "[dns]") {
  const std::vector<RRset> desired = {Set("a.z.", "A", {"10.0.0.1", "10.0.0.2"}),
                                      Set("b.z.", "TXT", {"\"x\""})};
  std::vector<RRset> actual = {
      Set("a.z.", "A", {"10.0.0.2", "10.0.0.1"}),  // same, reordered
      Set("b.z.", "TXT", {"\"changed\""}), Set("stale.z.", "A", {"10.9.9.9"}),
      Set("theirs.z.", "A", {"10.1.1.1"}, ""), Set("other.z.", "A", {"10.2.2.2"}, "c2d:another")};
  std::vector<RRset> changes = Diff(desired, actual, "c2d:me");
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].name == "b.z.");
  CHECK(changes[0].records == std::vector<std::string>{"\"x\""});
  CHECK(changes[1].name == "stale.z.");
  CHECK(changes[1].records.empty());  // a deletion
  // A set written without the tag (or with another TTL) is written again.
  actual[0].tag = "";
  CHECK(Diff(desired, actual, "c2d:me").size() == 3);
  CHECK(Diff(desired, {}, "c2d:me").size() == 2);
}

TEST_CASE("records are checked and put in canonical form", "[dns]") {
  v1::Record r;
  r.set_name("WEB.Shop.example.org");
  r.set_type(v1::RECORD_TYPE_AAAA);
  r.set_owner("service:svc_1");
  r.add_values("2001:DB8:0::1");
  REQUIRE(NormalizeRecord(r, 0).ok());
  CHECK(r.name() == "web.shop.example.org");
  CHECK(r.values(0) == "2001:db8::1");
  CHECK(r.ttl() == 60);
  RRset rr = ToRRset(r);
  CHECK(rr.name == "web.shop.example.org.");
  CHECK(rr.type == "AAAA");

  v1::Record srv = r;
  srv.set_type(v1::RECORD_TYPE_SRV);
  srv.clear_values();
  srv.add_values("0 1 8080 Loopback.Example.org");
  REQUIRE(NormalizeRecord(srv, 3).ok());
  CHECK(ToRRset(srv).records == std::vector<std::string>{"0 1 8080 loopback.example.org."});
  srv.set_values(0, "0 1 8080");
  absl::Status bad = NormalizeRecord(srv, 3);
  CHECK(absl::IsInvalidArgument(bad));
  CHECK(std::string(bad.message()).find("records[3].values[0]") != std::string::npos);

  CHECK(ZoneOf("a.b.example.org", {"example.org", "b.example.org"}) == "b.example.org");
  CHECK(ZoneOf("ab.example.org", {"b.example.org"}).empty());
  CHECK(ZoneOf("example.org", {"example.org"}) == "example.org");
  CHECK(ValidRecordName("_acme-challenge.web.example.org"));
  CHECK(ValidRecordName("*.w.example.org"));
  CHECK_FALSE(ValidRecordName("a.*.example.org"));
  CHECK_FALSE(ValidRecordName("Bad Name"));
  CHECK_FALSE(ValidOwner("tenant:x"));
}

}  // namespace
}  // namespace c2d::dns
