// An instance's Caddy, as cloud-init configures it (RenderCaddyConfig), run
// for real on loopback: c2d loads certificates into it over remote admin
// with mutual TLS, and it serves them on its TLS port by SNI. Both ends are
// checked: a client Caddy was not told of is refused, and c2d refuses an
// admin endpoint whose certificate is not from that instance's own CA.

#include "libs/cloud/openstack/caddy_admin.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "libs/cloud/openstack/cloud_init.h"
#include "libs/http/client.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d::cloud::openstack {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef";
constexpr char kInstance[] = "c2d-ins_01ADMINTEST";

// A client identity: a self-signed certificate and its key.
AdminClient NewClient(const std::string& name) {
  auto ca = crypto::CreateCa(name, absl::Hours(24));
  REQUIRE(ca.ok());
  return {ca->cert_pem, *ca->key.ToPem()};
}

// A certificate for `name` from a throwaway CA: the chain, the key, and the
// CA that verifies it.
struct Site {
  ServedCertificate served;
  std::string ca_pem;
};
Site NewSite(const std::string& name) {
  auto ca = crypto::CreateCa("test sites", absl::Hours(24));
  REQUIRE(ca.ok());
  auto key = crypto::EcKey::Generate();
  REQUIRE(key.ok());
  const absl::Time now = absl::Now();
  auto leaf = crypto::IssueLeaf(ca->key, ca->cert_pem, *key, {name}, now - absl::Minutes(1),
                                now + absl::Hours(1));
  REQUIRE(leaf.ok());
  return {{*leaf, *key->ToPem()}, ca->cert_pem};
}

void Write(const fs::path& path, const std::string& content) { std::ofstream(path) << content; }

// The instance's Caddy with its rendered configuration, moved to loopback
// ports and a temp directory.
struct InstanceCaddy {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("c2d-caddy-admin-", getpid());
  int admin_port = testing::FreePort(), tls_port = testing::FreePort();
  AdminClient client = NewClient("c2d deployer");
  std::unique_ptr<testing::Subprocess> caddy;

  InstanceCaddy() {
    fs::remove_all(dir);
    fs::create_directories(dir / "data");
    auto ca = InstanceAdminCa(kSecret, kInstance);
    REQUIRE(ca.ok());
    BootPlan plan{.container = kInstance,
                  .image = "registry.example/p/web@sha256:" + std::string(64, 'a'),
                  .port = testing::FreePort(),
                  .admin_client_certificate = client.certificate_pem,
                  .admin_port = admin_port,
                  .admin_ca_certificate = ca->cert_pem,
                  .admin_ca_key = *ca->key.ToPem()};
    json config = json::parse(RenderCaddyConfig(plan));
    // What cloud-init writes to /etc/c2d, here; every listener on loopback.
    Write(dir / "admin-ca.crt", plan.admin_ca_certificate);
    Write(dir / "admin-ca.key", plan.admin_ca_key);
    json& root = config["/apps/pki/certificate_authorities/c2d-admin/root"_json_pointer];
    REQUIRE(root["certificate"] == kAdminCaCertPath);
    REQUIRE(root["private_key"] == kAdminCaKeyPath);
    root = {{"certificate", (dir / "admin-ca.crt").string()},
            {"private_key", (dir / "admin-ca.key").string()}};
    const std::string local_admin = absl::StrCat("127.0.0.1:", testing::FreePort());
    config["admin"]["listen"] = local_admin;
    REQUIRE(config["admin"]["remote"]["listen"] == absl::StrCat(":", admin_port));
    config["admin"]["remote"]["listen"] = absl::StrCat("127.0.0.1:", admin_port);
    config["apps"]["http"]["servers"]["c2d-http"]["listen"] = {
        absl::StrCat("127.0.0.1:", testing::FreePort())};
    config["apps"]["http"]["servers"]["c2d-https"]["listen"] = {
        absl::StrCat("127.0.0.1:", tls_port)};
    Write(dir / "caddy.json", config.dump());
    caddy = std::make_unique<testing::Subprocess>(
        std::vector<std::string>{"/usr/bin/caddy", "run", "--config",
                                 (dir / "caddy.json").string()},
        std::map<std::string, std::string>{{"XDG_DATA_HOME", (dir / "data").string()},
                                           {"XDG_CONFIG_HOME", (dir / "data").string()}},
        (dir / "caddy.log").string());
    // Up once its local admin API answers (the remote one is all TLS).
    REQUIRE(testing::WaitFor(20s, [&] {
      auto r = http::Send({.url = absl::StrCat("http://", local_admin, "/config/"), .timeout = 1s});
      return (r.ok() && r->status == 200) || caddy->Wait(0ms).has_value();
    }));
    INFO(caddy->Output());
    REQUIRE_FALSE(caddy->Wait(0ms).has_value());
    // Its remote admin API comes up once Caddy has its admin certificate.
    REQUIRE(testing::WaitFor(20s, [&] {
      auto r = Admin("GET", "/config/apps/tls");
      return r.ok() && r->status == 200;
    }));
  }
  // A request to the remote admin API as c2d makes it.
  absl::StatusOr<http::Response> Admin(const std::string& method, const std::string& path) const {
    const AdminEndpoint c2d = Endpoint();
    const std::string name = AdminName(kInstance);
    return http::Send({.method = method,
                       .url = absl::StrCat("https://", name, ":", admin_port, path),
                       .timeout = 5s,
                       .ca_pem = c2d.ca_pem,
                       .client_cert_pem = c2d.client.certificate_pem,
                       .client_key_pem = c2d.client.key_pem,
                       .resolve = {absl::StrCat(name, ":", admin_port, ":127.0.0.1")}});
  }
  ~InstanceCaddy() {
    caddy.reset();
    fs::remove_all(dir);
  }

  AdminEndpoint Endpoint() const {
    return {.instance = kInstance,
            .address = absl::StrCat("127.0.0.1:", admin_port),
            .ca_pem = InstanceAdminCa(kSecret, kInstance)->cert_pem,
            .client = client};
  }
  // What a client sent to `name` by DNS gets from the TLS port: the body,
  // or the error (the certificate verified against `ca_pem`).
  absl::StatusOr<long> Visit(const std::string& name, const std::string& ca_pem) const {
    auto r = http::Send({.url = absl::StrCat("https://", name, ":", tls_port, "/"),
                         .timeout = 5s,
                         .ca_pem = ca_pem,
                         .resolve = {absl::StrCat(name, ":", tls_port, ":127.0.0.1")}});
    if (!r.ok()) return r.status();
    return r->status;
  }
};

TEST_CASE("caddy admin: c2d loads certificates into an instance's Caddy, which serves them",
          "[caddy-admin]") {
  InstanceCaddy instance;
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
  InstanceCaddy instance;
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
