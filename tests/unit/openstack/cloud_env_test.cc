// The OpenStack provider's settings from the environment, and the pull
// grants its instances get.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/time/clock.h"
#include "libs/cloud/openstack/cloud.h"
#include "libs/crypto/x509.h"
#include "libs/oci/access.h"

namespace c2d::cloud::openstack {
namespace {

struct Env {
  explicit Env(std::map<std::string, std::string> vars) : vars_(std::move(vars)) {
    for (const char* name :
         {"C2D_OS_AUTH_URL", "C2D_OS_USERNAME", "C2D_OS_PASSWORD", "C2D_OS_PROJECT_NAME",
          "C2D_OS_PROJECT_ID", "C2D_OS_APPLICATION_CREDENTIAL_ID",
          "C2D_OS_APPLICATION_CREDENTIAL_SECRET", "C2D_OS_IMAGE", "C2D_OS_FLAVOR",
          "C2D_OS_CONTROL_CIDRS", "C2D_OS_INTERFACE", "C2D_OS_ADMIN_CLIENT_CERT",
          "C2D_OS_ADMIN_CLIENT_KEY"}) {
      unsetenv(name);
    }
    for (const auto& [k, v] : vars_) setenv(k.c_str(), v.c_str(), 1);
  }
  ~Env() {
    for (const auto& [k, v] : vars_) unsetenv(k.c_str());
  }
  std::map<std::string, std::string> vars_;
};

const std::map<std::string, std::string> kPassword = {
    {"C2D_OS_AUTH_URL", "https://keystone.example:5000/v3"},
    {"C2D_OS_USERNAME", "c2d"},
    {"C2D_OS_PASSWORD", "secret"},
    {"C2D_OS_PROJECT_NAME", "c2d"},
    {"C2D_OS_IMAGE", "debian-12-genericcloud"},
    {"C2D_OS_CONTROL_CIDRS", "192.0.2.0/24, 198.51.100.0/24"}};

TEST_CASE("openstack settings: password or application credential, and what is missing",
          "[openstack]") {
  {
    Env env(kPassword);
    auto e = CloudEnv::FromEnv();
    REQUIRE(e.ok());
    CHECK(e->credentials.username == "c2d");
    CHECK(e->credentials.user_domain_name == "Default");
    CHECK(e->credentials.interface == "public");
    CHECK(e->options.flavor == "m1.small");
    CHECK(e->options.control_cidrs == std::vector<std::string>{"192.0.2.0/24", "198.51.100.0/24"});
  }
  {
    Env env({{"C2D_OS_AUTH_URL", "https://k/v3"},
             {"C2D_OS_APPLICATION_CREDENTIAL_ID", "app"},
             {"C2D_OS_APPLICATION_CREDENTIAL_SECRET", "s"},
             {"C2D_OS_IMAGE", "img"}});
    auto e = CloudEnv::FromEnv();
    REQUIRE(e.ok());
    CHECK(e->credentials.application_credential_id == "app");
    CHECK(e->credentials.username.empty());
  }
  auto missing = [](const std::string& drop, const std::string& named) {
    std::map<std::string, std::string> vars = kPassword;
    vars.erase(drop);
    Env env(vars);
    absl::Status s = CloudEnv::FromEnv().status();
    CHECK(absl::IsInvalidArgument(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains(named));
  };
  missing("C2D_OS_AUTH_URL", "C2D_OS_AUTH_URL");
  missing("C2D_OS_IMAGE", "C2D_OS_IMAGE");
  missing("C2D_OS_PASSWORD", "C2D_OS_PASSWORD");
  missing("C2D_OS_PROJECT_NAME", "C2D_OS_PROJECT_NAME or C2D_OS_PROJECT_ID");
  std::map<std::string, std::string> bad = kPassword;
  bad["C2D_OS_ADMIN_CLIENT_CERT"] = "/nonexistent/cert.pem";
  Env env(bad);
  CHECK(absl::IsInvalidArgument(CloudEnv::FromEnv().status()));
}

TEST_CASE("openstack settings: the remote admin client is a certificate and its key, or neither",
          "[openstack]") {
  auto ca = crypto::CreateCa("c2d deployer", absl::Hours(24));
  REQUIRE(ca.ok());
  const auto dir =
      std::filesystem::temp_directory_path() / ("c2d-env-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string cert = (dir / "client.crt").string(), key = (dir / "client.key").string();
  std::ofstream(cert) << ca->cert_pem;
  std::ofstream(key) << *ca->key.ToPem();
  std::map<std::string, std::string> both = kPassword;
  both["C2D_OS_ADMIN_CLIENT_CERT"] = cert;
  both["C2D_OS_ADMIN_CLIENT_KEY"] = key;
  {
    Env env(both);
    auto e = CloudEnv::FromEnv();
    REQUIRE(e.ok());
    CHECK(e->options.admin_client.certificate_pem == ca->cert_pem);
    CHECK(e->options.admin_client.key_pem == *ca->key.ToPem());
  }
  // One without the other, or the two swapped: refused, naming the setting.
  for (const auto& [name, value] : std::map<std::string, std::string>{
           {"C2D_OS_ADMIN_CLIENT_KEY", ""}, {"C2D_OS_ADMIN_CLIENT_CERT", key}}) {
    std::map<std::string, std::string> vars = both;
    vars[name] = value;
    Env env(vars);
    absl::Status s = CloudEnv::FromEnv().status();
    CHECK(absl::IsInvalidArgument(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains("C2D_OS_ADMIN_CLIENT_"));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("openstack pulls: a grant for the image's one repository, nothing else",
          "[openstack][security]") {
  const std::string key = oci::GrantKey("platform-password");
  auto pulls = GrantPulls("registry.example:5000", key, absl::Minutes(30));
  auto c = pulls("registry.example:5000/prj-1/web@sha256:" + std::string(64, 'c'));
  REQUIRE(c.ok());
  CHECK(c->registry == "registry.example:5000");
  CHECK(c->username == oci::kGrantUser);
  CHECK(c->password.find("platform-password") == std::string::npos);
  auto granted = oci::VerifyGrant(key, c->password, absl::Now());
  REQUIRE(granted.ok());
  REQUIRE(granted->size() == 1);
  CHECK(granted->front().name == "prj-1/web");
  CHECK(granted->front().actions == std::vector<std::string>{"pull"});
  // Expired after its time; images of another registry or by tag get none.
  CHECK_FALSE(oci::VerifyGrant(key, c->password, absl::Now() + absl::Minutes(31)).ok());
  CHECK(absl::IsInvalidArgument(pulls("other.example/prj-1/web@sha256:00").status()));
  CHECK(absl::IsInvalidArgument(pulls("registry.example:5000/prj-1/web:latest").status()));
}

TEST_CASE("openstack settings: C2D_PROVIDER picks the provider, and a wrong one is refused",
          "[openstack]") {
  pg::Pool pool({});  // never connects here: nothing is recorded
  const LocalOptions local{.engine_socket = "/run/c2d-test-engine.sock"};
  {
    Env env({});
    unsetenv("C2D_PROVIDER");
    auto chosen = ProviderChoice::FromEnv(local, pool);
    REQUIRE(chosen.ok());
    CHECK((*chosen)->openstack() == nullptr);
    CHECK(dynamic_cast<LocalProvider*>(&(*chosen)->provider()) != nullptr);
  }
  {
    Env env(kPassword);
    setenv("C2D_PROVIDER", "openstack", 1);
    auto chosen = ProviderChoice::FromEnv(local, pool);
    unsetenv("C2D_PROVIDER");
    REQUIRE(chosen.ok());
    REQUIRE((*chosen)->openstack() != nullptr);
    CHECK(&(*chosen)->provider() == &(*chosen)->openstack()->provider());
  }
  {
    Env env({});  // openstack without its settings
    setenv("C2D_PROVIDER", "openstack", 1);
    auto chosen = ProviderChoice::FromEnv(local, pool);
    unsetenv("C2D_PROVIDER");
    CHECK(absl::IsInvalidArgument(chosen.status()));
    CHECK_THAT(std::string(chosen.status().message()), Catch::Contains("C2D_OS_AUTH_URL"));
  }
  {
    Env env({});
    setenv("C2D_PROVIDER", "aws", 1);
    auto chosen = ProviderChoice::FromEnv(local, pool);
    unsetenv("C2D_PROVIDER");
    CHECK(absl::IsInvalidArgument(chosen.status()));
    CHECK_THAT(std::string(chosen.status().message()),
               Catch::Contains("\"aws\" is neither local nor openstack"));
  }
}

}  // namespace
}  // namespace c2d::cloud::openstack
