// Certificates for instances that terminate TLS themselves: what the
// deployer's leader hands each instance, and when it hands it again.

#include "services/deployer/cert_push.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"

namespace c2d::deployer {
namespace {

const std::string kCert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
const std::string kIssuer = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n";
const std::string kKey = "-----BEGIN PRIVATE KEY-----\nCCCC\n-----END PRIVATE KEY-----\n";

// Records what each instance was given; fails while `failing`.
class CertRecorder final : public cloud::Provider {
 public:
  absl::Status ServeCertificates(const std::string& ref,
                                 const std::vector<cloud::ServedCertificate>& certs) override {
    ++calls;
    if (failing) return absl::UnavailableError("instance unreachable");
    given[ref] = certs;
    return absl::OkStatus();
  }
  int calls = 0;
  bool failing = false;
  std::map<std::string, std::vector<cloud::ServedCertificate>> given;

  absl::StatusOr<cloud::Instance> Create(const cloud::InstanceSpec&) override { return No(); }
  absl::Status Start(const std::string&) override { return No(); }
  absl::Status Stop(const std::string&, std::chrono::seconds) override { return No(); }
  absl::Status Remove(const std::string&) override { return No(); }
  absl::StatusOr<cloud::Instance> Inspect(const std::string&) override { return No(); }
  absl::StatusOr<std::vector<cloud::Instance>> List(
      const std::map<std::string, std::string>&) override {
    return No();
  }
  absl::Status DeleteVolume(const std::string&) override { return No(); }
  absl::Status WriteVolumeFile(const std::string&, const std::string&,
                               const std::string&) override {
    return No();
  }
  absl::Status EnsureNetwork(const std::string&) override { return No(); }
  absl::Status RemoveNetwork(const std::string&) override { return No(); }
  absl::Status FollowLogs(const std::string&, std::optional<absl::Time>,
                          const std::function<bool(const cloud::LogLine&)>&,
                          const std::atomic<bool>*) override {
    return No();
  }

 private:
  static absl::Status No() { return absl::UnimplementedError("not in this test"); }
};

TEST_CASE("a certificate bundle splits into its chain and its key", "[certs]") {
  auto split = SplitBundle(kCert + kIssuer + kKey);
  REQUIRE(split.ok());
  CHECK(split->chain_pem == kCert + kIssuer);
  CHECK(split->key_pem == kKey);
  for (const std::string& bad : {kKey + kCert, kCert + kIssuer, kKey, std::string()}) {
    INFO(bad);
    CHECK(absl::IsInvalidArgument(SplitBundle(bad).status()));
  }
}

TEST_CASE("each instance is given its names' certificates once and again when they change",
          "[certs]") {
  std::map<std::string, std::string> store;  // name -> bundle
  CertRecorder provider;
  CertPusher pusher(provider, [&](const std::string& name) -> absl::StatusOr<std::string> {
    auto it = store.find(name);
    if (it == store.end()) return absl::NotFoundError(name);
    return it->second;
  });
  const std::vector<std::string> names = {"web.p.example.com", "www.shop.test"};

  // No certificate yet: nothing to give.
  REQUIRE(pusher.Push("srv-1", names).ok());
  CHECK(provider.calls == 0);
  // One name has one: given once, not again while it stays the same.
  store["web.p.example.com"] = kCert + kKey;
  REQUIRE(pusher.Push("srv-1", names).ok());
  REQUIRE(pusher.Push("srv-1", names).ok());
  CHECK(provider.calls == 1);
  REQUIRE(provider.given["srv-1"].size() == 1);
  CHECK(provider.given["srv-1"][0].chain_pem == kCert);
  CHECK(provider.given["srv-1"][0].key_pem == kKey);
  // Another instance of the service gets its own copy.
  REQUIRE(pusher.Push("srv-2", names).ok());
  CHECK(provider.calls == 2);
  CHECK(provider.given["srv-2"].size() == 1);

  // A renewal, and a custom domain's first certificate: both, at once.
  store["web.p.example.com"] = kIssuer + kKey;
  store["www.shop.test"] = kCert + kIssuer + kKey;
  REQUIRE(pusher.Push("srv-1", names).ok());
  REQUIRE(provider.given["srv-1"].size() == 2);
  CHECK(provider.given["srv-1"][0].chain_pem == kIssuer);
  CHECK(provider.given["srv-1"][1].chain_pem == kCert + kIssuer);

  // The instance cannot be reached: the error comes back, and the next pass
  // tries again.
  store.erase("www.shop.test");
  provider.failing = true;
  CHECK(absl::IsUnavailable(pusher.Push("srv-1", names)));
  provider.failing = false;
  const int before = provider.calls;
  REQUIRE(pusher.Push("srv-1", names).ok());
  CHECK(provider.calls == before + 1);
  CHECK(provider.given["srv-1"].size() == 1);

  // Every certificate gone (a domain deleted): the instance serves none.
  store.clear();
  REQUIRE(pusher.Push("srv-1", names).ok());
  CHECK(provider.given["srv-1"].empty());

  // A bundle that is not a chain then a key is refused, and not given.
  store["web.p.example.com"] = kKey;
  const int calls = provider.calls;
  CHECK(absl::IsInvalidArgument(pusher.Push("srv-2", names)));
  CHECK(provider.calls == calls);
}

TEST_CASE("an instance forgotten is given its certificates again", "[certs]") {
  CertRecorder provider;
  CertPusher pusher(provider,
                    [](const std::string&) -> absl::StatusOr<std::string> { return kCert + kKey; });
  REQUIRE(pusher.Push("srv-1", {"a.example"}).ok());
  REQUIRE(pusher.Push("srv-2", {"a.example"}).ok());
  CHECK(provider.calls == 2);
  // srv-2 left the pass's instances (gone), but was given them a moment
  // ago: it may be too new for the pass, and is kept.
  pusher.Retain({"srv-1"}, absl::Minutes(1));
  REQUIRE(pusher.Push("srv-2", {"a.example"}).ok());
  CHECK(provider.calls == 2);
  // Gone for longer than that: forgotten; a server of the same id later is
  // a new one and must be given them.
  pusher.Retain({"srv-1"}, absl::ZeroDuration());
  REQUIRE(pusher.Push("srv-1", {"a.example"}).ok());
  CHECK(provider.calls == 2);
  REQUIRE(pusher.Push("srv-2", {"a.example"}).ok());
  CHECK(provider.calls == 3);
}

}  // namespace
}  // namespace c2d::deployer
