// The OpenStack clients against a real OpenStack (tools/openstack-up: Keystone,
// Nova with its fake virt driver, Placement, Neutron, Glance, Swift).

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/cloud/openstack/errors.h"
#include "libs/cloud/openstack/neutron.h"
#include "libs/cloud/openstack/nova.h"
#include "libs/common/ids.h"
#include "tests/integration/openstack/os_env.h"
#include "tests/support/pg_fixture.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;
using testing::RequireEnv;

TEST_CASE("Keystone: a token is made once and the catalog names every service c2d uses",
          "[openstack]") {
  Session s(User());
  auto token = s.Token();
  REQUIRE(token.ok());
  CHECK(*s.Token() == *token);
  CHECK(s.authentications() == 1);
  CHECK_FALSE(s.ProjectId()->empty());
  for (const char* type : {"compute", "network", "image", "object-store"}) {
    INFO(type);
    CHECK(s.Endpoint(type).ok());
  }
  Credentials wrong = User();
  wrong.password = "not-the-password";
  Session refused(wrong);
  CHECK(absl::IsUnauthenticated(refused.Token().status()));
}

TEST_CASE("Neutron: a project's network, subnet, router and security group, made once",
          "[openstack]") {
  Session s(User());
  Neutron neutron(s);
  const std::string name = "c2d-" + absl::AsciiStrToLower(ids::New("prj"));
  auto net = neutron.EnsureNetwork(name);
  REQUIRE(net.ok());
  auto subnet = neutron.EnsureSubnet(name, *net, "10.201.7.0/24");
  REQUIRE(subnet.ok());
  auto router = neutron.EnsureRouter(name, "");
  REQUIRE(router.ok());
  REQUIRE(neutron.EnsureRouterInterface(*router, *subnet).ok());
  auto group = neutron.EnsureSecurityGroup(name, "c2d test");
  REQUIRE(group.ok());
  const SecurityGroupRule web{.port_min = 443, .remote_ip_prefix = "0.0.0.0/0"};
  REQUIRE(neutron.EnsureRule(*group, web).ok());
  // Everything again, as after a crash: the same resources, nothing new.
  CHECK(*neutron.EnsureNetwork(name) == *net);
  CHECK(*neutron.EnsureSubnet(name, *net, "10.201.7.0/24") == *subnet);
  CHECK(*neutron.EnsureRouter(name, "") == *router);
  CHECK(neutron.EnsureRouterInterface(*router, *subnet).ok());
  CHECK(*neutron.EnsureSecurityGroup(name, "c2d test") == *group);
  CHECK(neutron.EnsureRule(*group, web).ok());  // SecurityGroupRuleExists
  auto port = neutron.EnsurePort(name + "-port", *net, {*group});
  REQUIRE(port.ok());
  CHECK(port->ips.size() == 1);
  // A network in use cannot go; torn down in order, everything does.
  CHECK(absl::IsAborted(neutron.Delete("networks", *net)));
  CHECK(neutron.Delete("ports", port->id).ok());
  CHECK(neutron.RemoveRouterInterface(*router, *subnet).ok());
  CHECK(neutron.Delete("routers", *router).ok());
  CHECK(neutron.Delete("networks", *net).ok());
  CHECK(neutron.Delete("security-groups", *group).ok());
  CHECK(neutron.Delete("networks", *net).ok());  // gone already: fine
  CHECK_FALSE(neutron.FindByName("networks", name)->has_value());
}

TEST_CASE("Nova: a server made, found by its tags, stopped, started and deleted", "[openstack]") {
  Session s(User());
  Nova nova(s);
  Neutron neutron(s);
  auto flavor = nova.FlavorId(RequireEnv("C2D_TEST_OS_FLAVOR"));
  REQUIRE(flavor.ok());
  const std::string instance = absl::AsciiStrToLower(ids::New("ins"));
  auto net = neutron.EnsureNetwork("c2d-" + instance);
  REQUIRE(net.ok());
  REQUIRE(neutron.EnsureSubnet("c2d-" + instance, *net, "10.201.8.0/24").ok());
  auto id = nova.CreateServer({.name = "c2d-" + instance,
                               .flavor_id = *flavor,
                               .image_id = RequireEnv("C2D_TEST_OS_IMAGE"),
                               .user_data = "#cloud-config\n{}\n",
                               .network_ids = {*net},
                               .labels = {{"c2d.instance", instance}, {"c2d.test", "nova"}}});
  REQUIRE(id.ok());
  auto active = nova.WaitFor(*id, "ACTIVE", absl::Now() + absl::Seconds(90));
  INFO(active.status().ToString());
  REQUIRE(active.ok());
  CHECK(active->labels.at("c2d.instance") == instance);
  auto found = nova.ListServers({{"c2d.instance", instance}});
  REQUIRE(found.ok());
  REQUIRE(found->size() == 1);
  CHECK(found->front().id == *id);
  CHECK(nova.ListServers({{"c2d.instance", instance + "x"}})->empty());

  REQUIRE(nova.StopServer(*id).ok());
  CHECK(nova.WaitFor(*id, "SHUTOFF", absl::Now() + absl::Seconds(60)).ok());
  CHECK(nova.StopServer(*id).ok());  // stopped already: fine
  REQUIRE(nova.StartServer(*id).ok());
  CHECK(nova.WaitFor(*id, "ACTIVE", absl::Now() + absl::Seconds(60)).ok());

  REQUIRE(nova.DeleteServer(*id).ok());
  CHECK(nova.WaitGone(*id, absl::Now() + absl::Seconds(60)).ok());
  CHECK(nova.DeleteServer(*id).ok());  // gone already: fine
  CHECK(absl::IsNotFound(nova.GetServer(*id).status()));
  CHECK(neutron.Delete("networks", *net).ok());
}

TEST_CASE("Nova: a bad flavor and an exceeded quota are refused with Nova's reason",
          "[openstack]") {
  Session user(User()), admin(Admin());
  Nova nova(user), nova_admin(admin);
  auto bad = nova.CreateServer({.name = "c2d-bad",
                                .flavor_id = "no-such-flavor",
                                .image_id = RequireEnv("C2D_TEST_OS_IMAGE")});
  CHECK(absl::IsInvalidArgument(bad.status()));
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("no-such-flavor"));
  CHECK_FALSE(RequestId(bad.status()).empty());

  // The project may run no server at all: the quota's name reaches the user.
  const std::string project = *user.ProjectId();
  auto set_quota = [&](int instances) {
    return admin.Call("compute", {.method = "PUT",
                                  .path = "/os-quota-sets/" + project,
                                  .body = json{{"quota_set", {{"instances", instances}}}}});
  };
  REQUIRE(set_quota(0).ok());
  auto over = nova.CreateServer({.name = "c2d-over",
                                 .flavor_id = *nova.FlavorId(RequireEnv("C2D_TEST_OS_FLAVOR")),
                                 .image_id = RequireEnv("C2D_TEST_OS_IMAGE")});
  REQUIRE(set_quota(-1).ok());  // unlimited again, whatever happened
  CHECK(absl::IsResourceExhausted(over.status()));
  CHECK_THAT(std::string(over.status().message()), Catch::Contains("instances"));
}

}  // namespace
}  // namespace c2d::cloud::openstack
