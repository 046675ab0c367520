// libs/crypto/x509: keys, JWKs, ES256, CSRs, the internal CA and what is
// read back from chains, checked against OpenSSL's own verification and
// against values computed outside c2d (openssl and Python for the JWK, the
// RFC 9773 example for the ARI id).

#include "libs/crypto/x509.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/crypto/hash.h"
#include "tests/unit/es256_verify.h"

namespace c2d {
namespace {

using crypto::EcKey;

// Made with `openssl ecparam -name prime256v1 -genkey` + `openssl pkcs8
// -topk8`; its JWK and thumbprint were computed from `openssl ec -pubout`
// with Python's hashlib and base64.
constexpr char kFixedKeyPem[] = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKvtay6P2eZ8Xhg3B
A0Je87nBUs/cfDstS0KT6tUI5QuhRANCAASgzg54WWL4VMowG3SFri825RUHj2hy
rlQvqEQzBPf5+G+V5/S0dJ4N4sv+5PYoSPUVrfw30+CsouydpJWNgTPy
-----END PRIVATE KEY-----
)";
constexpr char kFixedKeyJwk[] =
    R"({"crv":"P-256","kty":"EC","x":"oM4OeFli-FTKMBt0ha4vNuUVB49ocq5UL6hEMwT3-fg",)"
    R"("y":"b5Xn9LR0ng3iy_7k9ihI9RWt_DfT4Kyi7J2klY2BM_I"})";
constexpr char kFixedKeyThumbprint[] = "7LN_qxNYbuu6zypiptmFG6hX7IP9rbu1DCvGzuyQvd8";

// RFC 9773 Appendix A: AKI 69:88:5B:…:D4, serial 0x87654321, validity in the
// year 1. Its ARI id is given there as "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".
constexpr char kRfc9773Cert[] = R"(-----BEGIN CERTIFICATE-----
MIIBQzCB66ADAgECAgUAh2VDITAKBggqhkjOPQQDAjAVMRMwEQYDVQQDEwpFeGFt
cGxlIENBMCIYDzAwMDEwMTAxMDAwMDAwWhgPMDAwMTAxMDEwMDAwMDBaMBYxFDAS
BgNVBAMTC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeBZu
7cbpAYNXZLbbh8rNIzuOoqOOtmxA1v7cRm//AwyMwWxyHz4zfwmBhcSrf47NUAFf
qzLQ2PPQxdTXREYEnKMjMCEwHwYDVR0jBBgwFoAUaYhba4dGQEHhs3uEe6CuLN4B
yNQwCgYIKoZIzj0EAwIDRwAwRAIge09+S5TZAlw5tgtiVvuERV6cT4mfutXIlwTb
+FYN/8oCIClDsqBklhB9KAelFiYt9+6FDj3z4KGVelYM5MdsO3pK
-----END CERTIFICATE-----
)";

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;

EcKey NewKey() {
  auto key = EcKey::Generate();
  REQUIRE(key.ok());
  return *std::move(key);
}

X509Ptr ReadPem(const std::string& pem) {
  std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::vector<std::string> SansOf(STACK_OF(X509_EXTENSION) * exts) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS) {
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                       ASN1_STRING_length(gn->d.dNSName));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string Pkcs8DerOf(EVP_PKEY* pkey) {
  PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(pkey);
  unsigned char* der = nullptr;
  const int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  PKCS8_PRIV_KEY_INFO_free(p8);
  return out;
}

TEST_CASE("a P-256 key survives PKCS#8 DER and PEM round trips", "[x509]") {
  EcKey key = NewKey();
  auto der = key.ToPkcs8Der();
  REQUIRE(der.ok());
  auto back = EcKey::FromPkcs8Der(*der);
  REQUIRE(back.ok());
  CHECK(back->PublicJwk() == key.PublicJwk());
  CHECK(*back->ToPkcs8Der() == *der);

  auto pem = key.ToPem();
  REQUIRE(pem.ok());
  CHECK(absl::StartsWith(*pem, "-----BEGIN PRIVATE KEY-----\n"));
  auto from_pem = EcKey::FromPem(*pem);
  REQUIRE(from_pem.ok());
  CHECK(from_pem->PublicJwk() == key.PublicJwk());
  // Two keys are two keys.
  CHECK(NewKey().PublicJwk() != key.PublicJwk());
}

TEST_CASE("the JWK and its thumbprint match values computed outside c2d", "[x509]") {
  auto key = EcKey::FromPem(kFixedKeyPem);
  REQUIRE(key.ok());
  CHECK(key->PublicJwk() == kFixedKeyJwk);
  CHECK(key->JwkThumbprint() == kFixedKeyThumbprint);
  // And for any key: RFC 7638 member order, 32-byte coordinates.
  EcKey fresh = NewKey();
  const std::string jwk = fresh.PublicJwk();
  CHECK(absl::StartsWith(jwk, R"({"crv":"P-256","kty":"EC","x":")"));
  CHECK(jwk.size() == std::string(kFixedKeyJwk).size());
  CHECK(fresh.JwkThumbprint() ==
        crypto::Base64UrlNoPad(absl::HexStringToBytes(crypto::Sha256Hex(jwk))));
}

TEST_CASE("ES256 signatures are 64 raw bytes that OpenSSL verifies", "[x509]") {
  EcKey key = NewKey();
  const std::string data = "eyJhbGciOiJFUzI1NiJ9.eyJoZWxsbyI6IndvcmxkIn0";
  auto sig = key.SignEs256(data);
  REQUIRE(sig.ok());
  CHECK(sig->size() == 64);
  CHECK(testing::VerifiesEs256(key.pkey(), data, *sig));
  CHECK_FALSE(testing::VerifiesEs256(key.pkey(), data + "x", *sig));
  CHECK_FALSE(testing::VerifiesEs256(NewKey().pkey(), data, *sig));
  // ECDSA is randomised: a second signature differs and verifies too.
  auto again = key.SignEs256(data);
  CHECK(*again != *sig);
  CHECK(testing::VerifiesEs256(key.pkey(), data, *again));
}

TEST_CASE("a CSR carries every name as a SAN and the first as CN", "[x509]") {
  EcKey key = NewKey();
  const std::vector<std::string> names = {"example.org", "*.example.org", "www.example.org"};
  auto der = crypto::CreateCsr(key, names);
  REQUIRE(der.ok());
  const auto* p = reinterpret_cast<const unsigned char*>(der->data());
  ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size())));
  REQUIRE(req);
  CHECK(X509_REQ_verify(req.get(), key.pkey()) == 1);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
  CHECK(SansOf(exts) == names);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, cn, sizeof(cn));
  CHECK(std::string(cn) == "example.org");
  CHECK(EVP_PKEY_eq(X509_REQ_get0_pubkey(req.get()), key.pkey()) == 1);
}

TEST_CASE("a CSR for a name too long for a CN has an empty subject and the SAN", "[x509]") {
  const std::string long_name = std::string(60, 'a') + ".example.org";
  auto der = crypto::CreateCsr(NewKey(), {long_name});
  REQUIRE(der.ok());
  const auto* p = reinterpret_cast<const unsigned char*>(der->data());
  ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size())));
  REQUIRE(req);
  CHECK(X509_NAME_entry_count(X509_REQ_get_subject_name(req.get())) == 0);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
  CHECK(SansOf(exts) == std::vector<std::string>{long_name});
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

TEST_CASE("CSRs refuse what is not a DNS name", "[x509]") {
  EcKey key = NewKey();
  for (const char* bad : {"", "a b.org", "-x.org", "x-.org", "a..org", "*.*.org", "a*.org",
                          "under_score.org", "x.org."}) {
    INFO(bad);
    CHECK(absl::IsInvalidArgument(crypto::CreateCsr(key, {"ok.org", bad}).status()));
  }
  CHECK(absl::IsInvalidArgument(crypto::CreateCsr(key, {}).status()));
}

TEST_CASE("the internal CA issues leaves that OpenSSL verifies for TLS servers", "[x509]") {
  auto ca = crypto::CreateCa("c2d local CA", absl::Hours(24 * 365));
  REQUIRE(ca.ok());
  X509Ptr ca_cert = ReadPem(ca->cert_pem);
  REQUIRE(ca_cert);
  CHECK(X509_check_ca(ca_cert.get()) >= 1);
  CHECK((X509_get_key_usage(ca_cert.get()) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
        (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  CHECK(X509_get0_subject_key_id(ca_cert.get()) != nullptr);
  for (int nid : {NID_basic_constraints, NID_key_usage}) {
    X509_EXTENSION* ext = X509_get_ext(ca_cert.get(), X509_get_ext_by_NID(ca_cert.get(), nid, -1));
    CHECK(X509_EXTENSION_get_critical(ext) == 1);
  }

  EcKey leaf_key = NewKey();
  const absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  const std::vector<std::string> names = {"web.demo.localhost", "*.web.demo.localhost"};
  auto leaf_pem = crypto::IssueLeaf(ca->key, ca->cert_pem, leaf_key, names, now - absl::Minutes(1),
                                    now + absl::Hours(24 * 30));
  REQUIRE(leaf_pem.ok());
  X509Ptr leaf = ReadPem(*leaf_pem);
  REQUIRE(leaf);
  CHECK(X509_check_ca(leaf.get()) == 0);
  CHECK((X509_get_extended_key_usage(leaf.get()) & XKU_SSL_SERVER) != 0);

  // The chain verifies against the CA for a TLS server with the leaf's names.
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca_cert.get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf.get(), nullptr);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), "api.web.demo.localhost", 0);
  const int verified = X509_verify_cert(ctx);
  INFO(X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  CHECK(verified == 1);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);

  auto info = crypto::ParseCertificateChain(*leaf_pem + ca->cert_pem);
  REQUIRE(info.ok());
  CHECK(info->chain_length == 2);
  CHECK(info->not_before == now - absl::Minutes(1));
  CHECK(info->not_after == now + absl::Hours(24 * 30));
  CHECK(info->issuer == "CN=c2d local CA");
  CHECK(info->dns_names == names);
  // 128 random bits: at most 16 bytes (leading zero bytes dropped), never twice the same.
  CHECK(info->serial_hex.size() <= 32);
  CHECK(info->serial_hex.size() % 2 == 0);
  auto second =
      crypto::IssueLeaf(ca->key, ca->cert_pem, leaf_key, names, now, now + absl::Hours(1));
  REQUIRE(second.ok());
  CHECK(crypto::ParseCertificateChain(*second)->serial_hex != info->serial_hex);
}

TEST_CASE("a derived key is the same for a secret and label, and another for another label",
          "[x509]") {
  const std::string secret(32, 's');
  auto a = EcKey::Derive(secret, "c2d-ins-1");
  auto again = EcKey::Derive(secret, "c2d-ins-1");
  auto other = EcKey::Derive(secret, "c2d-ins-2");
  auto other_secret = EcKey::Derive(std::string(32, 't'), "c2d-ins-1");
  REQUIRE(a.ok());
  REQUIRE(again.ok());
  REQUIRE(other.ok());
  REQUIRE(other_secret.ok());
  CHECK(a->PublicJwk() == again->PublicJwk());
  CHECK(*a->ToPkcs8Der() == *again->ToPkcs8Der());
  CHECK(a->PublicJwk() != other->PublicJwk());
  CHECK(a->PublicJwk() != other_secret->PublicJwk());
  // A real key pair: it signs what its public half verifies.
  auto sig = a->SignEs256("data");
  REQUIRE(sig.ok());
  CHECK(testing::VerifiesEs256(again->pkey(), "data", *sig));
  CHECK(EcKey::Derive("short", "x").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a CA made again from its derived key anchors what the first one issued", "[x509]") {
  auto key = EcKey::Derive(std::string(32, 's'), "c2d-ins-1");
  REQUIRE(key.ok());
  const absl::Time from = absl::FromUnixSeconds(1'700'000'000);
  const absl::Time until = from + absl::Hours(24 * 365 * 30);
  auto first = crypto::SelfSignedCa(*key, "c2d-ins-1 admin", from, until);
  auto second = crypto::SelfSignedCa(*key, "c2d-ins-1 admin", from, until);
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(*first != *second);  // another serial and signature
  EcKey leaf_key = NewKey();
  const absl::Time now = absl::Now();
  auto leaf = crypto::IssueLeaf(*key, *first, leaf_key, {"c2d-ins-1"}, now - absl::Minutes(1),
                                now + absl::Hours(12));
  REQUIRE(leaf.ok());
  for (const std::string* anchor : {&*first, &*second}) {
    X509Ptr ca = ReadPem(*anchor), cert = ReadPem(*leaf);
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, ca.get());
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, cert.get(), nullptr);
    X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), "c2d-ins-1", 0);
    CHECK(X509_verify_cert(ctx) == 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
  }
  // Another instance's CA anchors nothing of this one's.
  auto stranger_key = EcKey::Derive(std::string(32, 's'), "c2d-ins-2");
  auto stranger = crypto::SelfSignedCa(*stranger_key, "c2d-ins-1 admin", from, until);
  REQUIRE(stranger.ok());
  X509Ptr ca = ReadPem(*stranger), cert = ReadPem(*leaf);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca.get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert.get(), nullptr);
  CHECK(X509_verify_cert(ctx) == 0);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
}

TEST_CASE("the ARI id of an issued leaf is the CA's SKI and the serial's DER bytes", "[x509]") {
  auto ca = crypto::CreateCa("ari test CA", absl::Hours(1));
  REQUIRE(ca.ok());
  auto leaf_pem = crypto::IssueLeaf(ca->key, ca->cert_pem, NewKey(), {"a.localhost"}, absl::Now(),
                                    absl::Now() + absl::Hours(1));
  REQUIRE(leaf_pem.ok());
  auto info = crypto::ParseCertificateChain(*leaf_pem);
  REQUIRE(info.ok());
  // By hand: SKI bytes from the CA, the serial's magnitude with a 00 before
  // a high bit (DER INTEGER contents are two's complement).
  X509Ptr ca_cert = ReadPem(ca->cert_pem);
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(ca_cert.get());
  const std::string ski_bytes(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                              ASN1_STRING_length(ski));
  std::string serial = absl::HexStringToBytes(info->serial_hex);
  if (static_cast<unsigned char>(serial[0]) & 0x80) serial.insert(serial.begin(), '\0');
  CHECK(info->ari_id ==
        absl::StrCat(crypto::Base64UrlNoPad(ski_bytes), ".", crypto::Base64UrlNoPad(serial)));
  // A self-signed CA has no AKI, hence no ARI id.
  CHECK(crypto::ParseCertificateChain(ca->cert_pem)->ari_id.empty());
}

TEST_CASE("the ARI id of the RFC 9773 example certificate is the RFC's", "[x509]") {
  auto info = crypto::ParseCertificateChain(kRfc9773Cert);
  REQUIRE(info.ok());
  CHECK(info->ari_id == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
  CHECK(info->serial_hex == "87654321");
  CHECK(info->issuer == "CN=Example CA");
  CHECK(info->not_before ==
        absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone()));
  CHECK(info->dns_names.empty());
}

TEST_CASE("a key matches its own certificate only", "[x509]") {
  auto ca = crypto::CreateCa("match CA", absl::Hours(1));
  REQUIRE(ca.ok());
  EcKey key = NewKey();
  auto leaf = crypto::IssueLeaf(ca->key, ca->cert_pem, key, {"m.localhost"}, absl::Now(),
                                absl::Now() + absl::Hours(1));
  REQUIRE(leaf.ok());
  CHECK(*crypto::KeyMatchesCertificate(key, *leaf + ca->cert_pem) == true);
  CHECK(*crypto::KeyMatchesCertificate(NewKey(), *leaf) == false);
  // The CA's key matches the CA's certificate, not the leaf that follows it.
  CHECK(*crypto::KeyMatchesCertificate(ca->key, ca->cert_pem + *leaf) == true);
  CHECK(*crypto::KeyMatchesCertificate(ca->key, *leaf) == false);
}

TEST_CASE("the CA refuses to sign with a key that is not its own", "[x509]") {
  auto ca = crypto::CreateCa("one CA", absl::Hours(1));
  REQUIRE(ca.ok());
  auto wrong = crypto::IssueLeaf(NewKey(), ca->cert_pem, NewKey(), {"x.localhost"}, absl::Now(),
                                 absl::Now() + absl::Hours(1));
  CHECK(absl::IsInvalidArgument(wrong.status()));
  auto backwards = crypto::IssueLeaf(ca->key, ca->cert_pem, NewKey(), {"x.localhost"}, absl::Now(),
                                     absl::Now() - absl::Hours(1));
  CHECK(absl::IsInvalidArgument(backwards.status()));
  CHECK(absl::IsInvalidArgument(crypto::CreateCa("", absl::Hours(1)).status()));
}

TEST_CASE("malformed keys and certificates are InvalidArgument", "[x509]") {
  CHECK(absl::IsInvalidArgument(EcKey::FromPkcs8Der("").status()));
  CHECK(absl::IsInvalidArgument(EcKey::FromPkcs8Der("not a key").status()));
  std::string der = *NewKey().ToPkcs8Der();
  CHECK(absl::IsInvalidArgument(EcKey::FromPkcs8Der(der.substr(0, der.size() - 1)).status()));
  CHECK(absl::IsInvalidArgument(EcKey::FromPkcs8Der(der + "x").status()));
  CHECK(absl::IsInvalidArgument(EcKey::FromPem("-----BEGIN PRIVATE KEY-----\nAAAA\n").status()));

  // Other curves and RSA are refused: ES256 and c2d's certificates are P-256.
  PkeyPtr p384(EVP_EC_gen("P-384"));
  CHECK(absl::IsInvalidArgument(EcKey::FromPkcs8Der(Pkcs8DerOf(p384.get())).status()));
  PkeyPtr rsa(EVP_RSA_gen(2048));
  CHECK(absl::IsInvalidArgument(EcKey::FromPkcs8Der(Pkcs8DerOf(rsa.get())).status()));

  CHECK(absl::IsInvalidArgument(crypto::ParseCertificateChain("").status()));
  CHECK(absl::IsInvalidArgument(crypto::ParseCertificateChain("hello").status()));
  CHECK(absl::IsInvalidArgument(crypto::ParseCertificateChain(kFixedKeyPem).status()));
  std::string truncated = kRfc9773Cert;
  truncated.erase(100, 40);
  CHECK(absl::IsInvalidArgument(crypto::ParseCertificateChain(truncated).status()));
  // A good certificate followed by a broken one: the chain is refused.
  CHECK(absl::IsInvalidArgument(
      crypto::ParseCertificateChain(std::string(kRfc9773Cert) + truncated).status()));
  CHECK(absl::IsInvalidArgument(crypto::KeyMatchesCertificate(NewKey(), "junk").status()));
  // A key after the chain (Caddy's bundle form) is skipped.
  auto with_key = crypto::ParseCertificateChain(std::string(kRfc9773Cert) + kFixedKeyPem);
  REQUIRE(with_key.ok());
  CHECK(with_key->chain_length == 1);
}

}  // namespace
}  // namespace c2d
