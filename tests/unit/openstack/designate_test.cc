// Designate as a DNS backend, against the fake with Designate's own samples.

#include "libs/cloud/openstack/designate.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "tests/unit/openstack/fake_cloud.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;
using testing::FakeOpenStack;

constexpr char kZone[] = "/dns/v2/zones/a86dba58-0043-4cc6-a1bb-69d5e86f3ca3";

std::string ZoneIn(const std::string& status) {
  json z = json::parse(FakeOpenStack::Sample("designate/zone-response.json"));
  z["status"] = status;
  return z.dump();
}

TEST_CASE("designate: a missing zone is made and waited for until it is ACTIVE", "[openstack]") {
  FakeCloud c;
  c.os.Answer("GET", "/dns/v2/zones", 200, R"({"zones": [], "links": {}})");
  c.os.Answer("POST", "/dns/v2/zones", 202, ZoneIn("PENDING"));
  c.os.Answer("GET", kZone, 200, ZoneIn("ACTIVE"));
  c.os.FailNext("GET", kZone, 200, ZoneIn("PENDING"), 2);
  Designate designate(c.session, absl::Seconds(5), absl::Milliseconds(5));
  REQUIRE(designate.EnsureZone("internal.c2d.example.").ok());
  auto made = c.os.Requests("POST", "/dns/v2/zones");
  REQUIRE(made.size() == 1);
  const json body = json::parse(made[0].body);
  CHECK(body["name"] == "internal.c2d.example.");
  CHECK(body["email"] == "hostmaster@internal.c2d.example");
  CHECK(c.os.Requests("GET", kZone).size() == 3);

  // There already (the sample's example.org.): nothing made.
  c.os.Answer("GET", "/dns/v2/zones", 200,
              FakeOpenStack::Sample("designate/list-zones-response.json"));
  REQUIRE(designate.EnsureZone("example.org.").ok());
  CHECK(c.os.Requests("POST", "/dns/v2/zones").size() == 1);
  CHECK(absl::IsInvalidArgument(designate.EnsureZone("no-dot.example")));

  // A zone that fails, or never becomes ACTIVE, says so.
  c.os.Answer("GET", kZone, 200, ZoneIn("ERROR"));
  CHECK(absl::IsFailedPrecondition(designate.EnsureZone("example.org.")));
  c.os.Answer("GET", kZone, 200, ZoneIn("PENDING"));
  Designate impatient(c.session, absl::Milliseconds(30), absl::Milliseconds(5));
  CHECK(absl::IsDeadlineExceeded(impatient.EnsureZone("example.org.")));
}

TEST_CASE("designate: RRsets listed with their writer's tag, then made, replaced and deleted",
          "[openstack]") {
  FakeCloud c;
  c.os.Answer("GET", "/dns/v2/zones", 200,
              FakeOpenStack::Sample("designate/list-zones-response.json"));
  json sample =
      json::parse(FakeOpenStack::Sample("designate/list-recordset-in-zone-response.json"));
  json a = sample["recordsets"][0];
  a["name"] = "web.example.org.";
  a["description"] = "c2d:inst-1";
  json txt = a, soa = a;
  txt["id"] = "txt-1";
  txt["name"] = "old.example.org.";
  txt["type"] = "TXT";
  txt["records"] = {"\"someone else's\""};
  txt["description"] = nullptr;
  soa["id"] = "soa-1";
  soa["type"] = "SOA";
  const json listing = {{"recordsets", {soa, a, txt}}, {"links", json::object()}};
  c.os.Answer("GET", std::string(kZone) + "/recordsets", 200, listing.dump());
  Designate designate(c.session);

  auto sets = designate.List("example.org.");
  REQUIRE(sets.ok());
  REQUIRE(sets->size() == 2);  // no SOA (nor NS)
  CHECK(sets->at(0).name == "web.example.org.");
  CHECK(sets->at(0).records == std::vector<std::string>{"10.1.0.2"});
  CHECK(sets->at(0).ttl == 3600);
  CHECK(sets->at(0).tag == "inst-1");
  CHECK(sets->at(1).tag.empty());
  CHECK(absl::IsNotFound(designate.List("missing.example.").status()));

  const std::string rs = std::string(kZone) + "/recordsets/";
  c.os.Answer("PUT", rs + a["id"].get<std::string>(), 202, a.dump());
  c.os.Answer("POST", std::string(kZone) + "/recordsets", 201, a.dump());
  c.os.Answer("DELETE", rs + "txt-1", 202, txt.dump());
  REQUIRE(designate
              .Apply("example.org.",
                     {{.name = "web.example.org.", .type = "A", .ttl = 30, .records = {"10.0.0.9"}},
                      {.name = "new.example.org.", .type = "A", .records = {"10.0.0.8"}},
                      {.name = "old.example.org.", .type = "TXT"},
                      {.name = "never.example.org.", .type = "A"}},
                     "inst-2")
              .ok());
  auto put = c.os.Requests("PUT", rs);
  REQUIRE(put.size() == 1);
  CHECK(json::parse(put[0].body) ==
        json({{"records", {"10.0.0.9"}}, {"ttl", 30}, {"description", "c2d:inst-2"}}));
  auto post = c.os.Requests("POST", std::string(kZone) + "/recordsets");
  REQUIRE(post.size() == 1);
  CHECK(json::parse(post[0].body)["name"] == "new.example.org.");
  CHECK(json::parse(post[0].body)["type"] == "A");
  CHECK(c.os.Requests("DELETE", rs).size() == 1);  // "never" had nothing to delete
}

}  // namespace
}  // namespace c2d::cloud::openstack
