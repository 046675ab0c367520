// Instances that terminate TLS themselves (DNS routing, as on OpenStack)
// are given their service's certificates: by the deploy job before they
// take traffic, and by the reconciler again after a renewal or a new custom
// domain; nothing is sent again while nothing changed.

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/common/ids.h"
#include "tests/integration/deployer/deployer_fixture.h"

namespace c2d::testing {
namespace {

using namespace std::chrono_literals;

std::string Bundle(const std::string& tag) {
  return absl::StrCat("-----BEGIN CERTIFICATE-----\n", tag,
                      "\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nK", tag,
                      "\n-----END PRIVATE KEY-----\n");
}

// What the certs service would answer, changed by the test.
class Certificates {
 public:
  void Set(const std::string& name, const std::string& tag) {
    absl::MutexLock lock(&mu_);
    bundles_[name] = Bundle(tag);
  }
  deployer::CertLookup Lookup() {
    return [this](const std::string& name) -> absl::StatusOr<std::string> {
      absl::MutexLock lock(&mu_);
      auto it = bundles_.find(name);
      if (it == bundles_.end()) return absl::NotFoundError(name);
      return it->second;
    };
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> bundles_ ABSL_GUARDED_BY(mu_);
};

// Whether every healthy instance of the service serves exactly the chains
// tagged `tags`, in order.
bool AllServe(DeployerFixture& f, const std::vector<std::string>& tags) {
  auto served = f.tls()->Served();
  int healthy = 0;
  for (const v1::Instance& i : f.Instances()) {
    if (i.state() != v1::INSTANCE_STATE_HEALTHY) continue;
    ++healthy;
    auto it = served.find(i.provider_ref());
    if (it == served.end() || it->second.size() != tags.size()) return false;
    for (size_t n = 0; n < tags.size(); ++n) {
      if (it->second[n].chain_pem !=
          absl::StrCat("-----BEGIN CERTIFICATE-----\n", tags[n], "\n-----END CERTIFICATE-----\n")) {
        return false;
      }
    }
  }
  return healthy > 0;
}

TEST_CASE("instances that terminate TLS serve their service's certificates and renewals",
          "[deployer]") {
  Certificates certs;
  DeployerFixture f({.dns_routing = true, .certificates = certs.Lookup()});
  REQUIRE(f.tls() != nullptr);
  certs.Set(f.hostname(), "first");
  const std::string v1_digest = f.Image("v1"), v2_digest = f.Image("v2");
  v1::Deployment d = f.WaitSettled(f.Deploy(f.Request(v1_digest, 2)).id());
  REQUIRE(d.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(AllServe(f, {"first"}));  // before the switch
  CHECK(f.tls()->Served().size() == 2);

  // Unchanged: nothing is sent again, pass after pass.
  const int calls = f.tls()->calls();
  std::this_thread::sleep_for(2s);
  CHECK(f.tls()->calls() == calls);

  // A renewal reaches every instance.
  certs.Set(f.hostname(), "renewed");
  CHECK(WaitFor(20s, [&] { return AllServe(f, {"renewed"}); }));

  // A custom domain, once verified and issued, is served beside it.
  certs.Set("www.shop-tls.test", "custom");
  f.db().Exec(absl::StrCat(
      "INSERT INTO domains (id, service_id, project_id, hostname, kind, verification_state, "
      "cname_target) VALUES ('",
      ids::New("dom"), "', '", f.service_id(), "', '", f.project_id(),
      "', 'www.shop-tls.test', 'custom', 'pending', '", f.hostname(), "')"));
  std::this_thread::sleep_for(1s);
  CHECK(AllServe(f, {"renewed"}));  // not while pending
  f.db().Exec(
      "UPDATE domains SET verification_state = 'verified', verified_at = now() "
      "WHERE hostname = 'www.shop-tls.test'");
  CHECK(WaitFor(20s, [&] { return AllServe(f, {"renewed", "custom"}); }));

  // A new release's instances have them before they take traffic: when
  // the release is live, already.
  v1::Deployment next = f.WaitSettled(f.Deploy(f.Request(v2_digest, 1)).id());
  REQUIRE(next.state() == v1::DEPLOYMENT_STATE_LIVE);
  auto fresh = f.Instances(false, next.id());
  REQUIRE(fresh.size() == 1);
  auto given = f.tls()->Served();
  REQUIRE(given.count(fresh[0].provider_ref()) == 1);
  CHECK(given[fresh[0].provider_ref()].size() == 2);
  CHECK(WaitFor(20s, [&] {
    auto now = f.Instances(false, next.id());
    return now.size() == 1 && f.tls()->Served().count(now[0].provider_ref()) == 1 &&
           AllServe(f, {"renewed", "custom"});
  }));
}

}  // namespace
}  // namespace c2d::testing
