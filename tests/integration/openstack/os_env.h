#pragma once

// The all-in-one OpenStack's users, from the C2D_TEST_OS_* variables
// tools/test exports (tools/lib/openstack.sh), and the admin's set-up every
// test of the provider needs (PrepareCloud).

#include <catch2/catch.hpp>

#include "libs/cloud/openstack/neutron.h"
#include "libs/cloud/openstack/provider.h"
#include "libs/cloud/openstack/session.h"
#include "libs/crypto/x509.h"
#include "tests/support/pg_fixture.h"

namespace c2d::cloud::openstack {

// The member "c2d" of project "c2d": what c2d runs as.
inline Credentials User() {
  using testing::RequireEnv;
  return {.auth_url = RequireEnv("C2D_TEST_OS_AUTH_URL"),
          .username = RequireEnv("C2D_TEST_OS_USERNAME"),
          .password = RequireEnv("C2D_TEST_OS_PASSWORD"),
          .user_domain_id = RequireEnv("C2D_TEST_OS_USER_DOMAIN_ID"),
          .project_name = RequireEnv("C2D_TEST_OS_PROJECT_NAME"),
          .project_domain_id = RequireEnv("C2D_TEST_OS_PROJECT_DOMAIN_ID"),
          .region = RequireEnv("C2D_TEST_OS_REGION")};
}

// The cloud's admin: quotas, external networks.
inline Credentials Admin() {
  using testing::RequireEnv;
  Credentials c = User();
  c.username = RequireEnv("C2D_TEST_OS_ADMIN_USERNAME");
  c.password = RequireEnv("C2D_TEST_OS_ADMIN_PASSWORD");
  c.project_name = RequireEnv("C2D_TEST_OS_ADMIN_PROJECT_NAME");
  return c;
}

// The external network PrepareCloud makes (floating IPs come from it).
inline constexpr char kExternal[] = "c2d-test-external";

// The provider as the tests run it: the cloud's test image and flavor,
// floating IPs from kExternal, c2d "at" 192.0.2.0/24, quick polls.
// c2d's remote admin client identity, one per test process.
inline const AdminClient& TestAdminClient() {
  static const AdminClient client = [] {
    auto ca = crypto::CreateCa("c2d deployer (test)", absl::Hours(24));
    REQUIRE(ca.ok());
    return AdminClient{ca->cert_pem, *ca->key.ToPem()};
  }();
  return client;
}

inline ProviderOptions TestProviderOptions() {
  using testing::RequireEnv;
  return {.flavor = RequireEnv("C2D_TEST_OS_FLAVOR"),
          .image = RequireEnv("C2D_TEST_OS_IMAGE_NAME"),
          .external_network = kExternal,
          .control_cidrs = {"192.0.2.0/24"},
          .admin_client = TestAdminClient(),
          .boot_timeout = std::chrono::seconds(120),
          .delete_timeout = std::chrono::seconds(120),
          .poll = absl::Milliseconds(250)};
}

// The admin's part: an external network for floating IPs, and quotas that
// tests cannot run out of.
inline void PrepareCloud() {
  using json = nlohmann::json;
  Session admin(Admin());
  Session user(User());
  Neutron neutron(admin);
  const std::string project = *user.ProjectId();
  REQUIRE(admin
              .Call("network", {.method = "PUT",
                                .path = "/v2.0/quotas/" + project,
                                .body = json{{"quota",
                                              {{"network", -1},
                                               {"subnet", -1},
                                               {"router", -1},
                                               {"port", -1},
                                               {"floatingip", -1},
                                               {"security_group", -1},
                                               {"security_group_rule", -1}}}}})
              .ok());
  // Nova's too (a server group per service: its default allows 10).
  REQUIRE(admin
              .Call("compute", {.method = "PUT",
                                .path = "/os-quota-sets/" + project,
                                .body = json{{"quota_set",
                                              {{"instances", -1},
                                               {"cores", -1},
                                               {"ram", -1},
                                               {"server_groups", -1},
                                               {"server_group_members", -1}}}}})
              .ok());
  auto found = neutron.FindByName("networks", kExternal);
  REQUIRE(found.ok());
  if (*found) return;
  auto net = admin.Call("network", {.method = "POST",
                                    .path = "/v2.0/networks",
                                    .body = json{{"network",
                                                  {{"name", kExternal},
                                                   {"router:external", true},
                                                   {"provider:network_type", "flat"},
                                                   {"provider:physical_network", "external"}}}}});
  INFO(net.status().ToString());
  REQUIRE(net.ok());
  REQUIRE(neutron
              .EnsureSubnet(kExternal, net->body.value("/network/id"_json_pointer, ""),
                            "203.0.113.0/24")
              .ok());
}

}  // namespace c2d::cloud::openstack
