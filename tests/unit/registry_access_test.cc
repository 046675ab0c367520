#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "libs/http/client.h"
#include "libs/oci/access.h"
#include "nlohmann/json.hpp"
#include "tools/registry-token/token_service.h"

namespace c2d {
namespace {

using oci::Access;

TEST_CASE("grants allow what they name until they expire, and nothing once altered", "[registry]") {
  const std::string key = oci::GrantKey("platform-password");
  const absl::Time now = absl::Now();
  const std::vector<Access> access = {{.name = "c2d/stacks/*", .actions = {"pull"}},
                                      {.name = "shop/web", .actions = {"pull", "push"}}};
  const std::string grant = oci::MintGrant(key, access, now + absl::Minutes(5));
  auto ok = oci::VerifyGrant(key, grant, now);
  REQUIRE(ok.ok());
  CHECK(*ok == access);
  CHECK(absl::IsUnauthenticated(oci::VerifyGrant(key, grant, now + absl::Minutes(6)).status()));
  CHECK(absl::IsUnauthenticated(
      oci::VerifyGrant(oci::GrantKey("another password"), grant, now).status()));
  // Widening the grant's own text breaks its signature.
  std::string body = grant.substr(0, grant.rfind('.')), decoded;
  REQUIRE(absl::WebSafeBase64Unescape(body, &decoded));
  auto j = nlohmann::json::parse(decoded);
  j["access"][1]["name"] = "victim/*";
  std::string forged = http::Base64Url(j.dump());
  while (!forged.empty() && forged.back() == '=') forged.pop_back();
  forged += grant.substr(grant.rfind('.'));
  CHECK(absl::IsUnauthenticated(oci::VerifyGrant(key, forged, now).status()));
  CHECK(absl::IsUnauthenticated(oci::VerifyGrant(key, "garbage", now).status()));
}

TEST_CASE("a token carries what was asked for and the grant allows, no more", "[registry]") {
  const std::vector<Access> allowed = {{.name = "c2d/stacks/*", .actions = {"pull"}},
                                       {.name = "shop/*", .actions = {"pull"}},
                                       {.name = "shop/web", .actions = {"pull", "push"}}};
  auto requested = oci::ParseScope(
      "repository:shop/web:pull,push repository:shop/api:pull,push "
      "repository:victim/db:pull repository:c2d/stacks/static:pull repository:shopx/a:pull");
  REQUIRE(requested.ok());
  const std::vector<Access> expected = {{.name = "shop/web", .actions = {"pull", "push"}},
                                        {.name = "shop/api", .actions = {"pull"}},
                                        {.name = "c2d/stacks/static", .actions = {"pull"}}};
  CHECK(oci::Permit(allowed, *requested) == expected);
  CHECK_FALSE(oci::ParseScope("repository:nothing").ok());
  CHECK_FALSE(oci::ParseScope("repository:x:").ok());
}

// A throwaway RSA key and self-signed certificate, as PEM.
std::pair<std::string, std::string> KeyAndCertificate() {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_RSA_gen(2048), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_sign(cert.get(), key.get(), EVP_sha256());
  auto pem = [](auto write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    write(bio.get());
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
  };
  return {pem([&](BIO* b) {
            PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
          }),
          pem([&](BIO* b) { PEM_write_bio_X509(b, cert.get()); })};
}

httpd::Request TokenRequest(const std::string& user, const std::string& password,
                            const std::string& scope) {
  httpd::Request r;
  r.method = "GET";
  r.path = "/token";
  r.query = {{"service", "c2d-registry"}, {"scope", scope}};
  r.headers["authorization"] = "Basic " + http::Base64(user + ":" + password);
  return r;
}

nlohmann::json Claims(const std::string& token) {
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  REQUIRE(parts.size() == 3);
  std::string decoded;
  REQUIRE(absl::WebSafeBase64Unescape(parts[1], &decoded));
  return nlohmann::json::parse(decoded);
}

TEST_CASE("the token service signs scoped tokens for grants and refuses anyone else",
          "[registry]") {
  registry_token::Config config;
  std::tie(config.signer.private_key_pem, config.signer.certificate_pem) = KeyAndCertificate();
  config.signer.issuer = "c2d";
  config.platform_user = "c2d";
  config.platform_password = "platform-secret";
  const std::string grant = oci::MintGrant(oci::GrantKey(config.platform_password),
                                           {{.name = "shop/web", .actions = {"pull", "push"}}},
                                           absl::Now() + absl::Minutes(5));

  auto r = registry_token::HandleToken(
      config, TokenRequest(oci::kGrantUser, grant, "repository:victim/db:pull"));
  REQUIRE(r.status == 200);
  auto body = nlohmann::json::parse(r.body);
  CHECK(Claims(body["token"])["access"].empty());  // asked for another project's: nothing
  r = registry_token::HandleToken(
      config, TokenRequest(oci::kGrantUser, grant, "repository:shop/web:pull,push"));
  REQUIRE(r.status == 200);
  auto claims = Claims(nlohmann::json::parse(r.body)["token"]);
  CHECK(claims["access"][0]["name"] == "shop/web");
  CHECK(claims["aud"] == "c2d-registry");
  CHECK(claims["iss"] == "c2d");
  // The signature verifies with the certificate the registry trusts.
  const std::string token = nlohmann::json::parse(r.body)["token"];
  const std::string input = token.substr(0, token.rfind('.'));
  std::string sig;
  REQUIRE(absl::WebSafeBase64Unescape(token.substr(token.rfind('.') + 1), &sig));
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(config.signer.certificate_pem.data(),
                      static_cast<int>(config.signer.certificate_pem.size())),
      BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  REQUIRE(EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                               X509_get0_pubkey(cert.get())) == 1);
  CHECK(EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                         reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);

  CHECK(registry_token::HandleToken(
            config, TokenRequest("c2d", "platform-secret", "repository:victim/db:pull"))
            .status == 200);
  CHECK(registry_token::HandleToken(config, TokenRequest("c2d", "guess", "repository:a/b:pull"))
            .status == 401);
  CHECK(registry_token::HandleToken(config,
                                    TokenRequest(oci::kGrantUser, grant + "x", "repository:a:pull"))
            .status == 401);
  httpd::Request anonymous = TokenRequest("", "", "repository:a/b:pull");
  anonymous.headers.clear();
  CHECK(registry_token::HandleToken(config, anonymous).status == 401);
  httpd::Request other = TokenRequest("c2d", "platform-secret", "repository:a/b:pull");
  other.query = {{"service", "another-registry"}};
  CHECK(registry_token::HandleToken(config, other).status == 400);
}

}  // namespace
}  // namespace c2d
