#include "libs/crypto/x509.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <climits>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/status.h"

namespace c2d::crypto {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME, X509_NAME_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using SigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;
using GroupPtr = std::unique_ptr<EC_GROUP, Deleter<EC_GROUP, EC_GROUP_free>>;
using PointPtr = std::unique_ptr<EC_POINT, Deleter<EC_POINT, EC_POINT_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using P8Ptr =
    std::unique_ptr<PKCS8_PRIV_KEY_INFO, Deleter<PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free>>;

constexpr size_t kCoordinateBytes = 32;  // P-256
constexpr size_t kMaxCommonName = 64;    // ub-common-name, RFC 5280

// Drains OpenSSL's (thread-local) error queue into an Internal error.
absl::Status OpenSslError(absl::string_view what) {
  std::string detail;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&detail, detail.empty() ? "" : "; ", buf);
  }
  return absl::InternalError(
      absl::StrCat(what, ": ", detail.empty() ? "unknown OpenSSL error" : detail));
}

// Bad input: the queue holds only the parser's complaints, which must not
// leak into the next call's error text.
absl::Status Malformed(absl::string_view what) {
  ERR_clear_error();
  return absl::InvalidArgumentError(what);
}

// Never prompts on a terminal for an encrypted PEM's passphrase.
int NoPassphrase(char*, int, int, void*) { return 0; }

absl::StatusOr<BioPtr> ReadBio(absl::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) return Malformed("input too large");
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) return OpenSslError("BIO_new_mem_buf");
  return bio;
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

std::string Sha256(absl::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest.data()), len);
}

std::string LowerHex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

absl::StatusOr<std::string> Coordinate(EVP_PKEY* pkey, const char* param) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, param, &raw) != 1) return OpenSslError("reading the public key");
  BnPtr bn(raw);
  std::string out(kCoordinateBytes, '\0');
  if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), kCoordinateBytes) < 0) {
    return OpenSslError("encoding the public key");
  }
  return out;
}

bool IsP256(EVP_PKEY* pkey) {
  if (EVP_PKEY_is_a(pkey, "EC") != 1) return false;
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &len) != 1) return false;
  return OBJ_txt2nid(group) == NID_X9_62_prime256v1 ||
         EC_curve_nist2nid(group) == NID_X9_62_prime256v1;
}

// LDH labels, optionally after a leading "*." (a wildcard certificate).
bool ValidDnsName(absl::string_view name) {
  if (absl::StartsWith(name, "*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char ch : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '-') return false;
    }
  }
  return true;
}

absl::Status CheckNames(const std::vector<std::string>& dns_names) {
  if (dns_names.empty()) return absl::InvalidArgumentError("no DNS name given");
  for (const std::string& name : dns_names) {
    if (!ValidDnsName(name)) {
      return absl::InvalidArgumentError(absl::StrCat("not a DNS name: \"", name, "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<NamesPtr> DnsGeneralNames(const std::vector<std::string>& dns_names) {
  NamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return OpenSslError("GENERAL_NAMES");
  for (const std::string& name : dns_names) {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (gn == nullptr || ia5 == nullptr ||
        ASN1_STRING_set(ia5, name.data(), static_cast<int>(name.size())) != 1) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(ia5);
      return OpenSslError("GENERAL_NAME");
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    if (sk_GENERAL_NAME_push(names.get(), gn) == 0) {
      GENERAL_NAME_free(gn);
      return OpenSslError("GENERAL_NAMES push");
    }
  }
  return names;
}

// CN=<first name> when it fits a CN; otherwise an empty subject.
absl::StatusOr<NamePtr> SubjectFor(absl::string_view first_name) {
  NamePtr name(X509_NAME_new());
  if (!name) return OpenSslError("X509_NAME_new");
  if (first_name.size() <= kMaxCommonName &&
      X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(first_name.data()),
                                 static_cast<int>(first_name.size()), -1, 0) != 1) {
    return OpenSslError("setting the subject CN");
  }
  return name;
}

// A configured extension (e.g. "critical,CA:TRUE") whose value needs the
// issuer or subject certificate (subject/authority key identifiers).
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("adding ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

absl::Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return OpenSslError("RAND_bytes");
  bytes[15] |= 1;  // never zero, which RFC 5280 forbids
  BnPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("setting the serial");
  }
  return absl::OkStatus();
}

// Version, serial, validity, subject, issuer name and public key.
absl::StatusOr<X509Ptr> NewCertificate(X509_NAME* subject, X509_NAME* issuer, EVP_PKEY* pubkey,
                                       absl::Time not_before, absl::Time not_after) {
  X509Ptr cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  C2D_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), absl::ToTimeT(not_after)) == nullptr ||
      X509_set_subject_name(cert.get(), subject) != 1 ||
      X509_set_issuer_name(cert.get(), issuer) != 1 || X509_set_pubkey(cert.get(), pubkey) != 1) {
    return OpenSslError("filling in the certificate");
  }
  return cert;
}

absl::StatusOr<std::string> SignAndEncode(X509* cert, EVP_PKEY* signer) {
  if (X509_sign(cert, signer, EVP_sha256()) <= 0) return OpenSslError("signing the certificate");
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509(out.get(), cert) != 1) return OpenSslError("PEM-encoding");
  return BioContents(out.get());
}

// Every certificate of a PEM text, in order; other PEM blocks are skipped.
absl::StatusOr<std::vector<X509Ptr>> ReadCertificates(absl::string_view pem) {
  C2D_ASSIGN_OR_RETURN(BioPtr bio, ReadBio(pem));
  std::vector<X509Ptr> certs;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
    if (cert) {
      certs.push_back(std::move(cert));
      continue;
    }
    const unsigned long err = ERR_peek_last_error();
    const bool at_end =
        ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
    if (at_end && !certs.empty()) break;
    if (at_end) return Malformed("no PEM certificate found");
    return Malformed(absl::StrCat("PEM certificate #", certs.size() + 1, " is malformed"));
  }
  ERR_clear_error();  // the end-of-input marker
  return certs;
}

absl::StatusOr<absl::Time> ToTime(const ASN1_TIME* t) {
  struct tm tm = {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return Malformed("a certificate time does not parse");
  return absl::FromCivil(absl::CivilSecond(tm.tm_year + 1900LL, tm.tm_mon + 1, tm.tm_mday,
                                           tm.tm_hour, tm.tm_min, tm.tm_sec),
                         absl::UTCTimeZone());
}

std::string NameText(const X509_NAME* name) {
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || X509_NAME_print_ex(out.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  return BioContents(out.get());
}

std::vector<std::string> DnsNamesOf(X509* cert) {
  std::vector<std::string> out;
  NamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_DNS) continue;
    const ASN1_STRING* s = gn->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

// The serial's DER INTEGER contents (two's complement, so a leading 00 when
// the high bit is set), which is what RFC 9773 encodes.
absl::StatusOr<std::string> SerialContents(const ASN1_INTEGER* serial) {
  unsigned char* der = nullptr;
  const int len = i2d_ASN1_INTEGER(serial, &der);
  if (len <= 2) return OpenSslError("encoding the serial");
  std::string encoded(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  // Tag, then a short length (< 0x80) or 0x8n followed by n length bytes.
  const unsigned char first_len = static_cast<unsigned char>(encoded[1]);
  const size_t header = first_len < 0x80 ? 2 : 2 + (first_len & 0x7f);
  if (header >= encoded.size()) return Malformed("serial encoding");
  return encoded.substr(header);
}

absl::StatusOr<std::string> AriId(X509* cert) {
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(cert);
  if (aki == nullptr) return std::string();
  C2D_ASSIGN_OR_RETURN(std::string serial, SerialContents(X509_get0_serialNumber(cert)));
  absl::string_view key_id(reinterpret_cast<const char*>(ASN1_STRING_get0_data(aki)),
                           static_cast<size_t>(ASN1_STRING_length(aki)));
  return absl::StrCat(Base64UrlNoPad(key_id), ".", Base64UrlNoPad(serial));
}

std::string SerialHex(const ASN1_INTEGER* serial) {
  BnPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return "";
  std::string bytes(static_cast<size_t>(BN_num_bytes(bn.get())), '\0');
  BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(bytes.data()));
  return bytes.empty() ? "00" : LowerHex(bytes);
}

}  // namespace

std::string Base64UrlNoPad(absl::string_view data) { return absl::WebSafeBase64Escape(data); }

// ---- EcKey ----

absl::StatusOr<EcKey> EcKey::Adopt(EVP_PKEY* raw) {
  EcKey key;
  key.pkey_.reset(raw, EVP_PKEY_free);
  if (!IsP256(raw)) return Malformed("not an ECDSA P-256 key");
  C2D_ASSIGN_OR_RETURN(key.x_, Coordinate(raw, OSSL_PKEY_PARAM_EC_PUB_X));
  C2D_ASSIGN_OR_RETURN(key.y_, Coordinate(raw, OSSL_PKEY_PARAM_EC_PUB_Y));
  return key;
}

absl::StatusOr<EcKey> EcKey::Generate() {
  EVP_PKEY* raw = EVP_EC_gen("P-256");
  if (raw == nullptr) return OpenSslError("generating a P-256 key");
  return Adopt(raw);
}

absl::StatusOr<EcKey> EcKey::Derive(absl::string_view secret, absl::string_view label) {
  if (secret.size() < 32) return absl::InvalidArgumentError("a key secret has at least 32 bytes");
  GroupPtr group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  if (!group) return OpenSslError("EC_GROUP_new_by_curve_name");
  const BIGNUM* order = EC_GROUP_get0_order(group.get());
  // d = HMAC-SHA256(secret, label || counter), the first in [1, n).
  BnPtr d(BN_new());
  for (unsigned char counter = 0;; ++counter) {
    if (counter == 255) return OpenSslError("deriving a P-256 scalar");
    const std::string input = absl::StrCat(label, std::string(1, static_cast<char>(counter)));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
             reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
             &mac_len) == nullptr ||
        BN_bin2bn(mac, static_cast<int>(mac_len), d.get()) == nullptr) {
      return OpenSslError("HMAC-SHA256");
    }
    if (!BN_is_zero(d.get()) && BN_cmp(d.get(), order) < 0) break;
  }
  PointPtr pub(EC_POINT_new(group.get()));
  std::array<unsigned char, 1 + 2 * kCoordinateBytes> pub_octets{};
  if (!pub || EC_POINT_mul(group.get(), pub.get(), d.get(), nullptr, nullptr, nullptr) != 1 ||
      EC_POINT_point2oct(group.get(), pub.get(), POINT_CONVERSION_UNCOMPRESSED, pub_octets.data(),
                         pub_octets.size(), nullptr) != pub_octets.size()) {
    return OpenSslError("computing the public point");
  }
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.get()) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub_octets.data(),
                                       pub_octets.size()) != 1) {
    return OpenSslError("building the key's parameters");
  }
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params.get()) != 1) {
    return OpenSslError("making the derived key");
  }
  return Adopt(raw);
}

absl::StatusOr<EcKey> EcKey::FromPkcs8Der(absl::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  P8Ptr p8(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der.size())));
  if (!p8) return Malformed("not a PKCS#8 private key");
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return Malformed("trailing bytes after the PKCS#8 private key");
  }
  EVP_PKEY* raw = EVP_PKCS82PKEY(p8.get());
  if (raw == nullptr) return Malformed("the PKCS#8 private key does not decode");
  return Adopt(raw);
}

absl::StatusOr<EcKey> EcKey::FromPem(absl::string_view pem) {
  C2D_ASSIGN_OR_RETURN(BioPtr bio, ReadBio(pem));
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr);
  if (raw == nullptr) return Malformed("no unencrypted PEM private key found");
  return Adopt(raw);
}

absl::StatusOr<std::string> EcKey::ToPkcs8Der() const {
  P8Ptr p8(EVP_PKEY2PKCS8(pkey_.get()));
  if (!p8) return OpenSslError("EVP_PKEY2PKCS8");
  unsigned char* der = nullptr;
  const int len = i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &der);
  if (len <= 0) return OpenSslError("encoding PKCS#8");
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_clear_free(der, static_cast<size_t>(len));  // key material
  return out;
}

absl::StatusOr<std::string> EcKey::ToPem() const {
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_PKCS8PrivateKey(out.get(), pkey_.get(), nullptr, nullptr, 0, nullptr,
                                            nullptr) != 1) {
    return OpenSslError("PEM-encoding the key");
  }
  return BioContents(out.get());
}

std::string EcKey::PublicJwk() const {
  // Built by hand: RFC 7638 needs this exact member order and no spaces.
  return absl::StrCat(R"({"crv":"P-256","kty":"EC","x":")", Base64UrlNoPad(x_), R"(","y":")",
                      Base64UrlNoPad(y_), R"("})");
}

std::string EcKey::JwkThumbprint() const { return Base64UrlNoPad(Sha256(PublicJwk())); }

absl::StatusOr<std::string> EcKey::SignEs256(absl::string_view data) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t der_len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &der_len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return OpenSslError("ES256 signing");
  }
  std::string der(der_len, '\0');
  auto* der_bytes = reinterpret_cast<unsigned char*>(der.data());
  if (EVP_DigestSign(ctx.get(), der_bytes, &der_len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return OpenSslError("ES256 signing");
  }
  // OpenSSL gives an ECDSA-Sig-Value (DER); JWS wants r and s as fixed
  // 32-byte big-endian integers side by side.
  const unsigned char* p = der_bytes;
  SigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
  if (!sig) return OpenSslError("decoding the ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string raw(2 * kCoordinateBytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, kCoordinateBytes) < 0 ||
      BN_bn2binpad(s, out + kCoordinateBytes, kCoordinateBytes) < 0) {
    return OpenSslError("encoding the ECDSA signature");
  }
  return raw;
}

// ---- CSR ----

absl::StatusOr<std::string> CreateCsr(const EcKey& key, const std::vector<std::string>& dns_names) {
  C2D_RETURN_IF_ERROR(CheckNames(dns_names));
  ReqPtr req(X509_REQ_new());
  if (!req) return OpenSslError("X509_REQ_new");
  C2D_ASSIGN_OR_RETURN(NamePtr subject, SubjectFor(dns_names.front()));
  C2D_ASSIGN_OR_RETURN(NamesPtr names, DnsGeneralNames(dns_names));
  STACK_OF(X509_EXTENSION)* exts = nullptr;
  const bool built =
      X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) == 1 &&
      X509_REQ_set_subject_name(req.get(), subject.get()) == 1 &&
      X509_REQ_set_pubkey(req.get(), key.pkey()) == 1 &&
      X509V3_add1_i2d(&exts, NID_subject_alt_name, names.get(), 0, X509V3_ADD_APPEND) == 1 &&
      X509_REQ_add_extensions(req.get(), exts) == 1;
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (!built) return OpenSslError("building the CSR");
  if (X509_REQ_sign(req.get(), key.pkey(), EVP_sha256()) <= 0) {
    return OpenSslError("signing the CSR");
  }
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(req.get(), &der);
  if (len <= 0) return OpenSslError("encoding the CSR");
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

// ---- Internal CA ----

absl::StatusOr<CertificateAuthority> CreateCa(absl::string_view common_name,
                                              absl::Duration validity) {
  if (validity <= absl::ZeroDuration()) return absl::InvalidArgumentError("validity must be > 0");
  C2D_ASSIGN_OR_RETURN(EcKey key, EcKey::Generate());
  const absl::Time now = absl::Now();
  C2D_ASSIGN_OR_RETURN(std::string pem,
                       SelfSignedCa(key, common_name, now - absl::Minutes(5), now + validity));
  return CertificateAuthority{std::move(key), std::move(pem)};
}

absl::StatusOr<std::string> SelfSignedCa(const EcKey& key, absl::string_view common_name,
                                         absl::Time not_before, absl::Time not_after) {
  if (common_name.empty() || common_name.size() > kMaxCommonName) {
    return absl::InvalidArgumentError("a CA's common name has 1 to 64 characters");
  }
  if (not_after <= not_before) {
    return absl::InvalidArgumentError("not_after must be later than not_before");
  }
  C2D_ASSIGN_OR_RETURN(NamePtr name, SubjectFor(common_name));
  C2D_ASSIGN_OR_RETURN(X509Ptr cert,
                       NewCertificate(name.get(), name.get(), key.pkey(), not_before, not_after));
  X509* c = cert.get();
  C2D_RETURN_IF_ERROR(AddExtension(c, c, NID_basic_constraints, "critical,CA:TRUE"));
  C2D_RETURN_IF_ERROR(AddExtension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign"));
  C2D_RETURN_IF_ERROR(AddExtension(c, c, NID_subject_key_identifier, "hash"));
  return SignAndEncode(c, key.pkey());
}

absl::StatusOr<std::string> IssueLeaf(const EcKey& ca_key, absl::string_view ca_cert_pem,
                                      const EcKey& leaf_key,
                                      const std::vector<std::string>& dns_names,
                                      absl::Time not_before, absl::Time not_after) {
  C2D_RETURN_IF_ERROR(CheckNames(dns_names));
  if (not_after <= not_before) {
    return absl::InvalidArgumentError("not_after must be later than not_before");
  }
  C2D_ASSIGN_OR_RETURN(std::vector<X509Ptr> ca_chain, ReadCertificates(ca_cert_pem));
  X509* ca = ca_chain.front().get();
  if (X509_get0_subject_key_id(ca) == nullptr) {
    return absl::InvalidArgumentError("the CA certificate has no subjectKeyIdentifier");
  }
  if (EVP_PKEY_eq(X509_get0_pubkey(ca), ca_key.pkey()) != 1) {
    return Malformed("the CA key does not belong to the CA certificate");
  }
  C2D_ASSIGN_OR_RETURN(NamePtr subject, SubjectFor(dns_names.front()));
  C2D_ASSIGN_OR_RETURN(X509Ptr cert, NewCertificate(subject.get(), X509_get_subject_name(ca),
                                                    leaf_key.pkey(), not_before, not_after));
  X509* c = cert.get();
  C2D_RETURN_IF_ERROR(AddExtension(c, ca, NID_basic_constraints, "critical,CA:FALSE"));
  C2D_RETURN_IF_ERROR(AddExtension(c, ca, NID_key_usage, "critical,digitalSignature"));
  C2D_RETURN_IF_ERROR(AddExtension(c, ca, NID_ext_key_usage, "serverAuth"));
  C2D_RETURN_IF_ERROR(AddExtension(c, ca, NID_subject_key_identifier, "hash"));
  C2D_RETURN_IF_ERROR(AddExtension(c, ca, NID_authority_key_identifier, "keyid:always"));
  C2D_ASSIGN_OR_RETURN(NamesPtr names, DnsGeneralNames(dns_names));
  if (X509_add1_ext_i2d(c, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return OpenSslError("adding subjectAltName");
  }
  return SignAndEncode(c, ca_key.pkey());
}

// ---- Reading chains ----

absl::StatusOr<CertificateInfo> ParseCertificateChain(absl::string_view chain_pem) {
  C2D_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ReadCertificates(chain_pem));
  X509* leaf = certs.front().get();
  CertificateInfo info;
  C2D_ASSIGN_OR_RETURN(info.not_before, ToTime(X509_get0_notBefore(leaf)));
  C2D_ASSIGN_OR_RETURN(info.not_after, ToTime(X509_get0_notAfter(leaf)));
  info.serial_hex = SerialHex(X509_get0_serialNumber(leaf));
  info.issuer = NameText(X509_get_issuer_name(leaf));
  info.dns_names = DnsNamesOf(leaf);
  C2D_ASSIGN_OR_RETURN(info.ari_id, AriId(leaf));
  info.chain_length = static_cast<int>(certs.size());
  return info;
}

absl::StatusOr<bool> KeyMatchesCertificate(const EcKey& key, absl::string_view chain_pem) {
  C2D_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ReadCertificates(chain_pem));
  const EVP_PKEY* cert_key = X509_get0_pubkey(certs.front().get());
  return cert_key != nullptr && EVP_PKEY_eq(cert_key, key.pkey()) == 1;
}

}  // namespace c2d::crypto
