// An instance's Caddy, as cloud-init configures it (RenderCaddyConfig), run
// for real on loopback: c2d loads certificates into it over remote admin
// with mutual TLS, and it serves them on its TLS port by SNI. Both ends are
// checked: a client Caddy was not told of is refused, and c2d refuses an
// admin endpoint whose certificate is not from that instance's own CA.

#include "libs/cloud/openstack/caddy_admin.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "libs/cloud/openstack/cloud_init.h"
#include "libs/http/client.h"
#include "tests/integration/openstack/instance_caddy.h"

namespace c2d::cloud::openstack {
namespace {

using namespace std::chrono_literals;
using testing::InstanceCaddy;
using testing::NewClient;
using testing::NewSite;
using testing::Site;

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef";
constexpr char kInstance[] = "c2d-ins_01ADMINTEST";

// The instance kInstance's Caddy on loopback, and c2d's side of it.
struct InstanceUnderTest {
  AdminClient client = NewClient("c2d deployer");
  BootPlan plan = Plan(client);
  InstanceCaddy caddy{{{kCaddyConfigPath, RenderCaddyConfig(plan)},
                       {kAdminCaCertPath, plan.admin_ca_certificate},
                       {kAdminCaKeyPath, plan.admin_ca_key}},
                      "127.0.0.1",
                      testing::FreePort(),
                      testing::FreePort()};

  InstanceUnderTest() {
    // Its remote admin API comes up once Caddy has its admin certificate.
    INFO(caddy.Output());
    REQUIRE(testing::WaitFor(20s, [&] {
      auto r = Admin("GET", "/config/apps/tls");
      return r.ok() && r->status == 200;
    }));
  }
  static BootPlan Plan(const AdminClient& client) {
    auto ca = InstanceAdminCa(kSecret, kInstance);
    REQUIRE(ca.ok());
    return {.container = kInstance,
            .image = "registry.example/p/web@sha256:" + std::string(64, 'a'),
            .port = testing::FreePort(),
            .admin_client_certificate = client.certificate_pem,
            .admin_ca_certificate = ca->cert_pem,
            .admin_ca_key = *ca->key.ToPem()};
  }
  AdminEndpoint Endpoint() const {
    return {.instance = kInstance,
            .address = absl::StrCat("127.0.0.1:", caddy.admin_port()),
            .ca_pem = plan.admin_ca_certificate,
            .client = client};
  }
  // A request to the remote admin API as c2d makes it.
  absl::StatusOr<http::Response> Admin(const std::string& method, const std::string& path) const {
    const AdminEndpoint c2d = Endpoint();
    const std::string name = AdminName(kInstance);
    return http::Send({.method = method,
                       .url = absl::StrCat("https://", name, ":", caddy.admin_port(), path),
                       .timeout = 5s,
                       .ca_pem = c2d.ca_pem,
                       .client_cert_pem = c2d.client.certificate_pem,
                       .client_key_pem = c2d.client.key_pem,
                       .resolve = {absl::StrCat(name, ":", caddy.admin_port(), ":127.0.0.1")}});
  }
  absl::StatusOr<long> Visit(const std::string& name, const std::string& ca_pem) const {
    return caddy.Visit(name, ca_pem);
  }
};

TEST_CASE("caddy admin: c2d loads certificates into an instance's Caddy, which serves them",
          "[caddy-admin]") {
  InstanceUnderTest instance;
  // Before: no certificate, no TLS.
  const Site app = NewSite("app.example.test"), other = NewSite("other.example.test");
  CHECK_FALSE(instance.Visit("app.example.test", app.ca_pem).ok());

  REQUIRE(LoadCertificates(instance.Endpoint(), {app.served, other.served}).ok());
  // Each name gets its own certificate (the request reaches the app, which
  // does not run here: a proxy error, after a verified handshake).
  auto a = instance.Visit("app.example.test", app.ca_pem);
  INFO(a.status().ToString());
  REQUIRE(a.ok());
  CHECK(*a == 502);
  CHECK(instance.Visit("other.example.test", other.ca_pem).ok());
  CHECK_FALSE(instance.Visit("other.example.test", app.ca_pem).ok());

  // A renewal replaces what was there; a name no longer listed is gone.
  const Site renewed = NewSite("app.example.test");
  REQUIRE(LoadCertificates(instance.Endpoint(), {renewed.served}).ok());
  CHECK(instance.Visit("app.example.test", renewed.ca_pem).ok());
  CHECK_FALSE(instance.Visit("app.example.test", app.ca_pem).ok());
  CHECK_FALSE(instance.Visit("other.example.test", other.ca_pem).ok());
}

TEST_CASE("caddy admin: a stranger's client and a stranger's endpoint are both refused",
          "[caddy-admin]") {
  InstanceUnderTest instance;
  const Site app = NewSite("app.example.test");

  // A client certificate the instance was not told of: the handshake or
  // the request fails, and nothing is loaded.
  AdminEndpoint intruder = instance.Endpoint();
  intruder.client = NewClient("c2d deployer");
  CHECK_FALSE(LoadCertificates(intruder, {app.served}).ok());
  AdminEndpoint anonymous = instance.Endpoint();
  anonymous.client = {};
  CHECK_FALSE(LoadCertificates(anonymous, {app.served}).ok());
  CHECK_FALSE(instance.Visit("app.example.test", app.ca_pem).ok());

  // c2d expecting another instance there (its CA, its name) refuses to
  // send: the keys never leave.
  AdminEndpoint elsewhere = instance.Endpoint();
  elsewhere.instance = "c2d-ins_01SOMEONEELSE";
  elsewhere.ca_pem = InstanceAdminCa(kSecret, elsewhere.instance)->cert_pem;
  auto refused = LoadCertificates(elsewhere, {app.served});
  CHECK(refused.code() == absl::StatusCode::kUnavailable);
  AdminEndpoint other_secret = instance.Endpoint();
  other_secret.ca_pem = InstanceAdminCa(std::string(32, 'x'), kInstance)->cert_pem;
  CHECK(LoadCertificates(other_secret, {app.served}).code() == absl::StatusCode::kUnavailable);
  CHECK_FALSE(instance.Visit("app.example.test", app.ca_pem).ok());

  // Only the TLS paths: the rest of Caddy's configuration is not reachable.
  auto r = instance.Admin("GET", "/config/admin");
  REQUIRE(r.ok());
  CHECK(r->status == 403);
  const AdminEndpoint ok = instance.Endpoint();
  // A malformed certificate is Caddy's refusal, with its reason.
  auto bad = LoadCertificates(ok, {{.chain_pem = "not a certificate", .key_pem = "nor a key"}});
  CHECK(bad.code() == absl::StatusCode::kFailedPrecondition);
  // And the one c2d sends is still taken.
  CHECK(LoadCertificates(ok, {app.served}).ok());
  CHECK(instance.Visit("app.example.test", app.ca_pem).ok());
}

}  // namespace
}  // namespace c2d::cloud::openstack
