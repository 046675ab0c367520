#pragma once

// Keys and certificates for c2d's TLS: the ECDSA P-256 keys of ACME accounts
// and of certificates, the CSRs sent to an ACME CA, the internal CA that
// serves private names (https://<svc>.<project>.localhost), and what the
// certificate renewer reads back from a chain (validity, serial, SANs and
// the RFC 9773 ARI identifier).
//
// OpenSSL 3.0 EVP only. Errors: InvalidArgument for malformed or unsuitable
// input (never echoing key material), Internal for OpenSSL failures, with
// OpenSSL's error text.
//
// Usage:
//   C2D_ASSIGN_OR_RETURN(crypto::EcKey key, crypto::EcKey::Generate());
//   C2D_ASSIGN_OR_RETURN(std::string csr, crypto::CreateCsr(key, {"app.example.org"}));
//   ... ACME issues `chain_pem` ...
//   C2D_ASSIGN_OR_RETURN(crypto::CertificateInfo info, crypto::ParseCertificateChain(chain_pem));

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace c2d::crypto {

// An ECDSA key on P-256. Immutable once made, so copies share it and any
// thread may use it.
class EcKey {
 public:
  static absl::StatusOr<EcKey> Generate();
  // The same key every time for the same secret (32 bytes or more) and
  // label, and unrelated keys for different labels: the private scalar is
  // the first HMAC-SHA256(secret, label || counter) that lies in [1, n).
  // Lets c2d hand a machine a key it can make again without storing it.
  static absl::StatusOr<EcKey> Derive(absl::string_view secret, absl::string_view label);
  // The PKCS#8 PrivateKeyInfo DER form c2d seals at rest; InvalidArgument
  // unless it holds a P-256 key.
  static absl::StatusOr<EcKey> FromPkcs8Der(absl::string_view der);
  // PEM: "PRIVATE KEY" (PKCS#8) or "EC PRIVATE KEY" (SEC 1); P-256 only.
  static absl::StatusOr<EcKey> FromPem(absl::string_view pem);

  absl::StatusOr<std::string> ToPkcs8Der() const;
  // PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), what Caddy takes after the
  // certificate chain.
  absl::StatusOr<std::string> ToPem() const;

  // The public key as a JWK with exactly the RFC 7638 members in
  // lexicographic order and no whitespace:
  //   {"crv":"P-256","kty":"EC","x":"<b64url>","y":"<b64url>"}
  // which is also the thumbprint's input.
  std::string PublicJwk() const;
  // base64url (no padding) of SHA-256(PublicJwk()), RFC 7638.
  std::string JwkThumbprint() const;

  // ES256 (RFC 7518 §3.4): SHA-256 then ECDSA, as the 64-byte r || s of
  // JWS, not DER.
  absl::StatusOr<std::string> SignEs256(absl::string_view data) const;

  // The OpenSSL key, for code in this library.
  evp_pkey_st* pkey() const { return pkey_.get(); }

 private:
  EcKey() = default;
  // Takes ownership of `pkey`; InvalidArgument unless it is on P-256.
  static absl::StatusOr<EcKey> Adopt(evp_pkey_st* pkey);

  std::shared_ptr<evp_pkey_st> pkey_;
  std::string x_, y_;  // the public point's coordinates, 32 bytes each
};

// base64url without padding (RFC 4648 §5), as JOSE and ARI use it.
std::string Base64UrlNoPad(absl::string_view data);

// A PKCS#10 CSR for `dns_names` signed by `key`, DER. Every name goes into a
// subjectAltName extension; the subject is CN=<first name> when it fits the
// 64-character limit of a CN, else empty (the SANs are what CAs read).
// Names are LDH labels, optionally with a leading "*." wildcard; anything
// else (and an empty list) is InvalidArgument.
absl::StatusOr<std::string> CreateCsr(const EcKey& key, const std::vector<std::string>& dns_names);

struct CertificateAuthority {
  EcKey key;
  std::string cert_pem;  // self-signed
};

// A new internal CA: a P-256 key and a self-signed certificate (CN =
// `common_name`, valid from 5 minutes ago, for clock skew, for `validity`)
// with basicConstraints CA:TRUE (critical), keyUsage keyCertSign|cRLSign
// (critical) and a subjectKeyIdentifier.
absl::StatusOr<CertificateAuthority> CreateCa(absl::string_view common_name,
                                              absl::Duration validity);

// CreateCa's certificate on a given key and validity. Two made on the same
// key, name and validity differ only in serial and signature, so either
// one anchors a chain issued under the other (a trust anchor is matched by
// subject and key, its own signature unchecked).
absl::StatusOr<std::string> SelfSignedCa(const EcKey& key, absl::string_view common_name,
                                         absl::Time not_before, absl::Time not_after);

// A server certificate for `dns_names` on `leaf_key`'s public key, signed by
// the CA: random 128-bit serial, subject CN=<first name> (when it fits),
// subjectAltName with every name, extendedKeyUsage serverAuth, keyUsage
// digitalSignature, basicConstraints CA:FALSE, authorityKeyIdentifier from
// the CA's subjectKeyIdentifier. Returns the leaf's PEM alone.
// InvalidArgument: bad names, not_after <= not_before, a CA certificate that
// is malformed, has no subjectKeyIdentifier or does not match `ca_key`.
absl::StatusOr<std::string> IssueLeaf(const EcKey& ca_key, absl::string_view ca_cert_pem,
                                      const EcKey& leaf_key,
                                      const std::vector<std::string>& dns_names,
                                      absl::Time not_before, absl::Time not_after);

// What c2d needs to know about an issued chain, all from its first
// certificate (the leaf).
struct CertificateInfo {
  absl::Time not_before;
  absl::Time not_after;
  // The serial's magnitude in lower-case hex, two digits per byte, without
  // the 00 byte DER adds before a high bit ("0a1b2c", as `openssl x509
  // -serial` prints it, lower-cased).
  std::string serial_hex;
  // One-line RFC 2253 form, e.g. "CN=Pebble Intermediate CA 1a2b,O=Pebble".
  std::string issuer;
  std::vector<std::string> dns_names;  // the subjectAltName dNSNames, in order
  // RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(the serial's
  // DER INTEGER contents). Empty when the leaf has no AKI keyIdentifier.
  std::string ari_id;
  int chain_length = 0;  // certificates in the PEM, leaf included
};

// Parses a PEM chain, leaf first (other PEM blocks, such as a key, are
// skipped). InvalidArgument when there is no certificate or one is malformed.
absl::StatusOr<CertificateInfo> ParseCertificateChain(absl::string_view chain_pem);

// Whether `key` is the private key of the chain's leaf. InvalidArgument when
// the chain does not parse.
absl::StatusOr<bool> KeyMatchesCertificate(const EcKey& key, absl::string_view chain_pem);

}  // namespace c2d::crypto
