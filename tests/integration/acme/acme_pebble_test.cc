// The ACME client against a real CA: Pebble (Debian's pebble 2.4) with
// pebble-challtestsrv answering its DNS queries and HTTP-01 requests.
// run_pebble_test.sh starts both (tools/lib/pebble.sh) and passes them in
// the environment; without it every test fails, naming the script.
// Pebble's random badNonce refusals are on: the client must hide them.

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/acme/client.h"
#include "libs/crypto/seal.h"
#include "libs/crypto/x509.h"
#include "libs/http/client.h"

namespace c2d {
namespace {

using nlohmann::json;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    FAIL(name << " is not set: run this test through tests/integration/acme/run_pebble_test.sh"
              << " (ctest -L pebble), which starts Pebble and pebble-challtestsrv");
  }
  return value;
}

acme::Options PebbleOptions() {
  acme::Options options;
  options.directory_url = Env("C2D_PEBBLE_DIRECTORY");
  options.ca_file = Env("C2D_PEBBLE_CA_FILE");
  options.timeout = std::chrono::milliseconds(10'000);
  return options;
}

crypto::EcKey NewKey() {
  auto key = crypto::EcKey::Generate();
  REQUIRE(key.ok());
  return *std::move(key);
}

// A fresh name under c2d.test: Pebble reuses valid authorizations of the
// same account for the same name half of the time, and these tests want
// validation to happen.
std::string FreshName(absl::string_view label) {
  return absl::StrCat(label, "-", absl::BytesToHexString(crypto::RandomBytes(4)), ".c2d.test");
}

// pebble-challtestsrv's management API (add-http01, set-txt, ...).
void Challtest(absl::string_view path, const json& body) {
  http::Request request;
  request.method = "POST";
  request.url = absl::StrCat(Env("C2D_CHALLTESTSRV_MANAGEMENT"), path);
  request.body = body.dump();
  request.timeout = std::chrono::milliseconds(5000);
  auto response = http::Send(request);
  REQUIRE(response.ok());
  REQUIRE(response->status == 200);
}

absl::Time Deadline() { return absl::Now() + absl::Seconds(60); }

// Responds to every pending authorization of `order` with `type`
// ("http-01" or "dns-01"), one after the other, and waits for each.
void Authorize(acme::Client& client, const acme::Order& order, absl::string_view type) {
  for (const std::string& url : order.authorizations) {
    auto authz = client.GetAuthorization(url);
    REQUIRE(authz.ok());
    if (authz->status == "valid") continue;
    const acme::Challenge* challenge = authz->Find(type);
    REQUIRE(challenge != nullptr);
    const std::string txt_host = absl::StrCat("_acme-challenge.", authz->identifier.value, ".");
    if (type == "http-01") {
      Challtest("/add-http01", {{"token", challenge->token},
                                {"content", client.KeyAuthorization(challenge->token)}});
    } else {
      Challtest("/set-txt",
                {{"host", txt_host}, {"value", client.Dns01TxtValue(challenge->token)}});
    }
    REQUIRE(client.AcceptChallenge(challenge->url).ok());
    auto done = client.WaitAuthorization(url, Deadline());
    INFO(done.status());
    REQUIRE(done.ok());
    CHECK(done->status == "valid");
    if (type == "http-01") {
      Challtest("/del-http01", {{"token", challenge->token}});
    } else {
      Challtest("/clear-txt", {{"host", txt_host}});
    }
  }
}

// Finalizes a ready order with a new key's CSR and downloads the chain.
std::pair<crypto::EcKey, std::string> Issue(acme::Client& client, const acme::Order& order,
                                            const std::vector<std::string>& names) {
  auto ready = client.WaitOrder(order.url, "ready", Deadline());
  INFO(ready.status());
  REQUIRE(ready.ok());
  crypto::EcKey key = NewKey();
  auto csr = crypto::CreateCsr(key, names);
  REQUIRE(csr.ok());
  auto finalized = client.Finalize(*ready, *csr);
  INFO(finalized.status());
  REQUIRE(finalized.ok());
  auto valid = client.WaitOrder(order.url, "valid", Deadline());
  INFO(valid.status());
  REQUIRE(valid.ok());
  REQUIRE_FALSE(valid->certificate.empty());
  auto chain = client.DownloadChain(valid->certificate);
  INFO(chain.status());
  REQUIRE(chain.ok());
  return {std::move(key), *std::move(chain)};
}

// OpenSSL's verdict on `chain_pem` (leaf, then intermediates) as a TLS
// server certificate for `host`, trusting Pebble's current root.
bool VerifiesAgainstPebbleRoot(const std::string& chain_pem, const std::string& host) {
  http::Request request;
  request.url = absl::StrCat(Env("C2D_PEBBLE_MANAGEMENT"), "/roots/0");
  request.ca_file = Env("C2D_PEBBLE_CA_FILE");
  auto root_pem = http::Send(request);
  REQUIRE(root_pem.ok());
  REQUIRE(root_pem->status == 200);

  auto read_all = [](const std::string& pem) {
    std::vector<X509*> out;
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out.push_back(cert);
    BIO_free(bio);
    return out;
  };
  std::vector<X509*> chain = read_all(chain_pem);
  std::vector<X509*> roots = read_all(root_pem->body);
  REQUIRE(chain.size() >= 2);
  REQUIRE(roots.size() == 1);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, roots[0]);
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i]);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, chain[0], untrusted);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), host.c_str(), 0);
  const bool ok = X509_verify_cert(ctx) == 1;
  UNSCOPED_INFO(
      "chain verification: " << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(store);
  for (X509* c : chain) X509_free(c);
  for (X509* c : roots) X509_free(c);
  return ok;
}

TEST_CASE("Pebble issues a certificate by HTTP-01 that parses and matches its key", "[pebble]") {
  acme::Client client(PebbleOptions(), NewKey());
  auto kid = client.RegisterAccount("ops@c2d.test");
  INFO(kid.status());
  REQUIRE(kid.ok());
  // newAccount with the same key finds the same account.
  auto again = client.RegisterAccount("ops@c2d.test");
  REQUIRE(again.ok());
  CHECK(*again == *kid);

  const std::string name = FreshName("web");
  auto order = client.NewOrder({{"dns", name}});
  INFO(order.status());
  REQUIRE(order.ok());
  CHECK(order->status == "pending");
  REQUIRE(order->authorizations.size() == 1);
  Authorize(client, *order, "http-01");
  auto [key, chain] = Issue(client, *order, {name});

  auto info = crypto::ParseCertificateChain(chain);
  INFO(info.status());
  REQUIRE(info.ok());
  CHECK(info->dns_names == std::vector<std::string>{name});
  CHECK(info->chain_length == 2);  // leaf and Pebble's intermediate
  CHECK(absl::StartsWith(info->issuer, "CN=Pebble Intermediate CA"));
  CHECK_FALSE(info->ari_id.empty());
  CHECK(info->not_before <= absl::Now() + absl::Minutes(1));
  // run_pebble_test.sh shortens Pebble's certificate lifetime (its
  // certificateValidityPeriod, N seconds: notAfter = notBefore + N - 1).
  if (const char* validity = std::getenv("C2D_PEBBLE_CERT_VALIDITY")) {
    int64_t seconds = 0;
    REQUIRE(absl::SimpleAtoi(validity, &seconds));
    CHECK(info->not_after - info->not_before == absl::Seconds(seconds - 1));
  }
  CHECK(*crypto::KeyMatchesCertificate(key, chain));
  CHECK_FALSE(*crypto::KeyMatchesCertificate(NewKey(), chain));
  CHECK(VerifiesAgainstPebbleRoot(chain, name));

  // ARI: Pebble 2.4 offers no renewalInfo; a later one would, and then the
  // certificate just issued has a suggested window.
  auto has_ari = client.HasRenewalInfo();
  REQUIRE(has_ari.ok());
  auto renewal = client.RenewalInfo(info->ari_id);
  if (*has_ari) {
    INFO(renewal.status());
    REQUIRE(renewal.ok());
    CHECK(renewal->window_start < renewal->window_end);
  } else {
    CHECK(absl::IsUnimplemented(renewal.status()));
  }
}

TEST_CASE("Pebble issues a wildcard certificate by DNS-01", "[pebble]") {
  acme::Client client(PebbleOptions(), NewKey());
  REQUIRE(client.RegisterAccount("").ok());
  const std::string base = FreshName("wild");
  const std::vector<std::string> names = {"*." + base, base};
  auto order = client.NewOrder({{"dns", names[0]}, {"dns", names[1]}});
  INFO(order.status());
  REQUIRE(order.ok());
  REQUIRE(order->authorizations.size() == 2);
  bool saw_wildcard = false;
  for (const std::string& url : order->authorizations) {
    auto authz = client.GetAuthorization(url);
    REQUIRE(authz.ok());
    CHECK(authz->identifier.value == base);  // the wildcard's authorization drops "*."
    if (authz->wildcard) {
      saw_wildcard = true;
      // RFC 8555 §7.1.3: a wildcard is proven by DNS-01 only.
      CHECK(authz->Find("http-01") == nullptr);
    }
  }
  CHECK(saw_wildcard);
  Authorize(client, *order, "dns-01");
  auto [key, chain] = Issue(client, *order, names);

  auto info = crypto::ParseCertificateChain(chain);
  REQUIRE(info.ok());
  std::vector<std::string> sans = info->dns_names;
  std::sort(sans.begin(), sans.end());
  std::vector<std::string> wanted = names;
  std::sort(wanted.begin(), wanted.end());
  CHECK(sans == wanted);
  CHECK(*crypto::KeyMatchesCertificate(key, chain));
  CHECK(VerifiesAgainstPebbleRoot(chain, "api." + base));
}

TEST_CASE("a name Pebble's policy forbids fails at newOrder with its reason", "[pebble]") {
  acme::Client client(PebbleOptions(), NewKey());
  REQUIRE(client.RegisterAccount("").ok());
  auto order = client.NewOrder({{"dns", "app.blocked.c2d.test"}});
  CHECK(absl::IsInvalidArgument(order.status()));
  CHECK(acme::ProblemType(order.status()) == "urn:ietf:params:acme:error:rejectedIdentifier");
  CHECK(absl::StrContains(order.status().message(), "app.blocked.c2d.test"));
  CHECK(absl::StrContains(order.status().message(), "forbidden by policy"));
}

TEST_CASE("a wrong HTTP-01 response fails validation with the CA's reason", "[pebble]") {
  acme::Client client(PebbleOptions(), NewKey());
  REQUIRE(client.RegisterAccount("").ok());
  const std::string name = FreshName("wrong");
  auto order = client.NewOrder({{"dns", name}});
  REQUIRE(order.ok());
  auto authz = client.GetAuthorization(order->authorizations.at(0));
  REQUIRE(authz.ok());
  const acme::Challenge* challenge = authz->Find("http-01");
  REQUIRE(challenge != nullptr);
  Challtest("/add-http01", {{"token", challenge->token}, {"content", "not-the-key-authorization"}});
  REQUIRE(client.AcceptChallenge(challenge->url).ok());
  auto failed = client.WaitAuthorization(authz->url, Deadline());
  INFO(failed.status());
  CHECK(absl::IsFailedPrecondition(failed.status()));
  CHECK(acme::ProblemType(failed.status()) == "urn:ietf:params:acme:error:unauthorized");
  CHECK(absl::StrContains(failed.status().message(), name));
  CHECK(absl::StrContains(failed.status().message(), "not-the-key-authorization"));
  Challtest("/del-http01", {{"token", challenge->token}});
  // The order follows its authorization.
  auto dead = client.WaitOrder(order->url, "ready", Deadline());
  CHECK(absl::IsFailedPrecondition(dead.status()));
}

TEST_CASE("a name whose DNS fails cannot be validated and says why", "[pebble]") {
  acme::Client client(PebbleOptions(), NewKey());
  REQUIRE(client.RegisterAccount("").ok());
  const std::string name = FreshName("dead");
  Challtest("/set-servfail", {{"host", name}});
  auto order = client.NewOrder({{"dns", name}});
  REQUIRE(order.ok());
  auto authz = client.GetAuthorization(order->authorizations.at(0));
  REQUIRE(authz.ok());
  const acme::Challenge* challenge = authz->Find("http-01");
  REQUIRE(challenge != nullptr);
  REQUIRE(client.AcceptChallenge(challenge->url).ok());
  auto failed = client.WaitAuthorization(authz->url, Deadline());
  INFO(failed.status());
  CHECK(absl::IsFailedPrecondition(failed.status()));
  CHECK(acme::ProblemType(failed.status()) == "urn:ietf:params:acme:error:connection");
  CHECK(absl::StrContains(failed.status().message(), name));
  Challtest("/clear-servfail", {{"host", name}});
}

TEST_CASE("Pebble's random badNonce refusals never reach the caller", "[pebble]") {
  acme::Client client(PebbleOptions(), NewKey());
  REQUIRE(client.RegisterAccount("").ok());
  auto order = client.NewOrder({{"dns", FreshName("nonce")}});
  REQUIRE(order.ok());
  // 5 % of nonces are refused: 80 signed requests meet at least one refusal
  // with probability 1 - 0.95^80 > 98 %.
  for (int i = 0; i < 80; ++i) {
    auto again = client.GetOrder(order->url);
    INFO(i << ": " << again.status());
    REQUIRE(again.ok());
  }
}

}  // namespace
}  // namespace c2d
