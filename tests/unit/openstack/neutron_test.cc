#include "libs/cloud/openstack/neutron.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "tests/unit/openstack/fake_cloud.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;
using testing::FakeOpenStack;

struct Fixture : FakeCloud {
  Neutron neutron{session};
};

TEST_CASE("a project's network is made when missing and found again when present", "[openstack]") {
  Fixture f;
  f.os.Answer("GET", "/network/v2.0/networks", 200, R"({"networks": []})");
  f.os.Answer("POST", "/network/v2.0/networks", 201,
              FakeOpenStack::Sample("neutron/network-create-response.json"));
  auto made = f.neutron.EnsureNetwork("c2d-prj_1");
  REQUIRE(made.ok());
  CHECK(*made == "4e8e5957-649f-477b-9e5b-f1f75b21c03c");  // the sample's
  auto lookup = f.os.Requests("GET", "/network/v2.0/networks");
  REQUIRE(lookup.size() == 1);
  CHECK(absl::StrContains(lookup[0].target, "name=c2d-prj_1"));
  const json body = json::parse(f.os.Requests("POST", "/network")[0].body);
  CHECK(body["network"]["name"] == "c2d-prj_1");

  // Run again (after a crash): found by name, nothing made.
  f.os.Answer("GET", "/network/v2.0/networks", 200, R"({"networks": [{"id": "net-9"}]})");
  CHECK(*f.neutron.EnsureNetwork("c2d-prj_1") == "net-9");
  CHECK(f.os.Requests("POST", "/network").size() == 1);
}

TEST_CASE("subnets, routers and their interfaces are made once", "[openstack]") {
  Fixture f;
  f.os.Answer("GET", "/network/v2.0/subnets", 200, R"({"subnets": []})");
  f.os.Answer("POST", "/network/v2.0/subnets", 201,
              FakeOpenStack::Sample("neutron/subnet-create-response.json"));
  REQUIRE(f.neutron.EnsureSubnet("c2d-prj_1", "net-1", "10.200.0.0/24", {"9.9.9.9"}).ok());
  const json subnet = json::parse(f.os.Requests("POST", "/network/v2.0/subnets")[0].body);
  CHECK(subnet["subnet"]["cidr"] == "10.200.0.0/24");
  CHECK(subnet["subnet"]["ip_version"] == 4);
  CHECK(subnet["subnet"]["dns_nameservers"] == json{"9.9.9.9"});

  f.os.Answer("GET", "/network/v2.0/routers", 200, R"({"routers": []})");
  f.os.Answer("POST", "/network/v2.0/routers", 201,
              FakeOpenStack::Sample("neutron/router-create-response.json"));
  auto router = f.neutron.EnsureRouter("c2d-prj_1", "ext-net");
  REQUIRE(router.ok());
  const json r = json::parse(f.os.Requests("POST", "/network/v2.0/routers")[0].body);
  CHECK(r["router"]["external_gateway_info"]["network_id"] == "ext-net");

  const std::string add = "/network/v2.0/routers/" + *router + "/add_router_interface";
  f.os.Answer("PUT", add, 200, FakeOpenStack::Sample("neutron/router-add-interface-response.json"));
  f.os.Answer("GET", "/network/v2.0/ports", 200, R"({"ports": []})");
  REQUIRE(f.neutron.EnsureRouterInterface(*router, "sub-1").ok());
  CHECK(f.os.Requests("PUT", add).size() == 1);
  // It has one on that subnet now: not added again.
  f.os.Answer(
      "GET", "/network/v2.0/ports", 200,
      R"({"ports": [{"id": "p", "fixed_ips": [{"subnet_id": "sub-1", "ip_address": "10.200.0.1"}]}]})");
  REQUIRE(f.neutron.EnsureRouterInterface(*router, "sub-1").ok());
  CHECK(f.os.Requests("PUT", add).size() == 1);
}

TEST_CASE("a rule the group has already is fine and other refusals are not", "[openstack]") {
  Fixture f;
  const std::string rules = "/network/v2.0/security-group-rules";
  f.os.Answer("GET", rules, 200, R"({"security_group_rules": []})");
  f.os.Answer("POST", rules, 201,
              FakeOpenStack::Sample("neutron/security-group-rule-create-response.json"));
  SecurityGroupRule web{.port_min = 443, .remote_ip_prefix = "0.0.0.0/0"};
  REQUIRE(f.neutron.EnsureRule("sg-1", web).ok());
  const json body = json::parse(f.os.Requests("POST", rules)[0].body);
  CHECK(body["security_group_rule"]["port_range_min"] == 443);
  CHECK(body["security_group_rule"]["port_range_max"] == 443);
  CHECK(body["security_group_rule"]["remote_ip_prefix"] == "0.0.0.0/0");
  f.os.FailNext(
      "POST", rules, 409,
      R"({"NeutronError": {"type": "SecurityGroupRuleExists", "message": "Security group rule already exists. Rule id is x.", "detail": ""}})");
  CHECK(f.neutron.EnsureRule("sg-1", web).ok());
  f.os.FailNext(
      "POST", rules, 409,
      R"({"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['security_group_rule'].", "detail": ""}})");
  absl::Status over = f.neutron.EnsureRule("sg-1", web).status();
  CHECK(absl::IsResourceExhausted(over));
  CHECK_THAT(std::string(over.message()), Catch::Contains("security_group_rule"));
}

TEST_CASE("ports and floating IPs are made and deleting what is gone is fine", "[openstack]") {
  Fixture f;
  f.os.Answer("GET", "/network/v2.0/ports", 200, R"({"ports": []})");
  f.os.Answer("POST", "/network/v2.0/ports", 201,
              R"({"port": {"id": "port-1", "network_id": "net-1", "status": "DOWN"}})");
  f.os.Answer(
      "GET", "/network/v2.0/ports/port-1", 200,
      R"({"port": {"id": "port-1", "network_id": "net-1", "status": "DOWN", "fixed_ips": [{"ip_address": "10.200.0.5"}]}})");
  auto port = f.neutron.EnsurePort("c2d-ins_1", "net-1", {"sg-1"});
  REQUIRE(port.ok());
  CHECK(port->ips == std::vector<std::string>{"10.200.0.5"});
  CHECK(json::parse(
            f.os.Requests("POST", "/network/v2.0/ports")[0].body)["port"]["security_groups"] ==
        json{"sg-1"});

  f.os.Answer("POST", "/network/v2.0/floatingips", 201,
              FakeOpenStack::Sample("neutron/floatingip-create-response.json"));
  auto fip = f.neutron.CreateFloatingIp("ext-net", "port-1", "c2d-ins_1");
  REQUIRE(fip.ok());
  CHECK_FALSE(fip->first.empty());
  CHECK_FALSE(fip->second.empty());

  CHECK(f.neutron.Delete("floatingips", "gone").ok());  // the fake's 404
  f.os.Answer("DELETE", "/network/v2.0/ports/port-1", 409,
              R"({"NeutronError": {"type": "PortInUse", "message": "in use", "detail": ""}})");
  CHECK(absl::IsAborted(f.neutron.Delete("ports", "port-1")));
}

}  // namespace
}  // namespace c2d::cloud::openstack
