#pragma once

// OpenSSL's own ECDSA verification of a JWS-form (r || s) ES256 signature,
// for the tests of libs/crypto/x509 and libs/acme.

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include <string>

namespace c2d::testing {

inline bool VerifiesEs256(EVP_PKEY* pkey, const std::string& data, const std::string& raw_sig) {
  if (raw_sig.size() != 64) return false;
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw_sig.data());
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(bytes, 32, nullptr), BN_bin2bn(bytes + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
      EVP_DigestVerify(ctx, der, static_cast<size_t>(der_len),
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  return ok;
}

}  // namespace c2d::testing
