#include "libs/oci/access.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/crypto/hash.h"
#include "libs/http/client.h"
#include "nlohmann/json.hpp"

namespace c2d::oci {
namespace {

using nlohmann::json;

// base64url without padding, as JWTs and grants use it.
std::string B64Url(absl::string_view data) {
  std::string s = http::Base64Url(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

json AccessJson(const std::vector<Access>& access) {
  json out = json::array();
  for (const Access& a : access) {
    out.push_back({{"type", a.type}, {"name", a.name}, {"actions", a.actions}});
  }
  return out;
}

bool NameMatches(const std::string& allowed, const std::string& name) {
  if (absl::EndsWith(allowed, "/*")) {
    return absl::StartsWith(name, allowed.substr(0, allowed.size() - 1));
  }
  return allowed == name;
}

bool Has(const std::vector<std::string>& actions, const std::string& action) {
  return std::find(actions.begin(), actions.end(), action) != actions.end();
}

}  // namespace

absl::StatusOr<std::vector<Access>> ParseScope(absl::string_view scope) {
  std::vector<Access> out;
  for (absl::string_view one : absl::StrSplit(scope, ' ', absl::SkipEmpty())) {
    size_t first = one.find(':'), last = one.rfind(':');
    if (first == absl::string_view::npos || first == last) {
      return absl::InvalidArgumentError(
          absl::StrCat("scope \"", one, "\" is not type:name:actions"));
    }
    Access a;
    a.type = std::string(one.substr(0, first));
    a.name = std::string(one.substr(first + 1, last - first - 1));
    a.actions = absl::StrSplit(one.substr(last + 1), ',', absl::SkipEmpty());
    if (a.name.empty() || a.actions.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("scope \"", one, "\" names nothing"));
    }
    out.push_back(std::move(a));
  }
  return out;
}

std::string ScopeString(const Access& access) {
  return absl::StrCat(access.type, ":", access.name, ":", absl::StrJoin(access.actions, ","));
}

std::string GrantKey(absl::string_view platform_password) {
  return crypto::HmacSha256Hex(platform_password, "c2d registry grants v1");
}

std::string MintGrant(absl::string_view key, const std::vector<Access>& access,
                      absl::Time expires) {
  const std::string body =
      B64Url(json{{"access", AccessJson(access)}, {"exp", absl::ToUnixSeconds(expires)}}.dump());
  return absl::StrCat(body, ".", crypto::HmacSha256Hex(key, body));
}

absl::StatusOr<std::vector<Access>> VerifyGrant(absl::string_view key, absl::string_view grant,
                                                absl::Time now) {
  const size_t dot = grant.rfind('.');
  if (dot == absl::string_view::npos) return absl::UnauthenticatedError("not a grant");
  absl::string_view body = grant.substr(0, dot);
  if (!crypto::ConstantTimeEquals(crypto::HmacSha256Hex(key, body), grant.substr(dot + 1))) {
    return absl::UnauthenticatedError("the grant's signature does not match");
  }
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(body, &decoded)) {
    return absl::UnauthenticatedError("the grant is not base64url");
  }
  json j = json::parse(decoded, nullptr, false);
  if (!j.is_object() || !j["exp"].is_number_integer() || !j["access"].is_array()) {
    return absl::UnauthenticatedError("the grant is malformed");
  }
  if (absl::FromUnixSeconds(j["exp"].get<int64_t>()) < now) {
    return absl::UnauthenticatedError("the grant has expired");
  }
  std::vector<Access> out;
  for (const json& a : j["access"]) {
    if (!a.is_object() || !a["name"].is_string() || !a["type"].is_string() ||
        !a["actions"].is_array()) {
      return absl::UnauthenticatedError("the grant is malformed");
    }
    Access access{a["type"].get<std::string>(), a["name"].get<std::string>(), {}};
    for (const json& action : a["actions"]) {
      if (action.is_string()) access.actions.push_back(action.get<std::string>());
    }
    out.push_back(std::move(access));
  }
  return out;
}

std::vector<Access> Permit(const std::vector<Access>& allowed,
                           const std::vector<Access>& requested) {
  std::vector<Access> out;
  for (const Access& want : requested) {
    Access got{want.type, want.name, {}};
    for (const std::string& action : want.actions) {
      for (const Access& may : allowed) {
        if (may.type == want.type && NameMatches(may.name, want.name) &&
            (Has(may.actions, action) || Has(may.actions, "*"))) {
          if (!Has(got.actions, action)) got.actions.push_back(action);
          break;
        }
      }
    }
    if (!got.actions.empty()) out.push_back(std::move(got));
  }
  return out;
}

absl::StatusOr<std::string> SignToken(const TokenSigner& signer, const std::string& service,
                                      const std::string& subject, const std::vector<Access>& access,
                                      absl::Time now, absl::Duration ttl) {
  using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
  Bio cert_bio(BIO_new_mem_buf(signer.certificate_pem.data(),
                               static_cast<int>(signer.certificate_pem.size())),
               BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), X509_free);
  Bio key_bio(BIO_new_mem_buf(signer.private_key_pem.data(),
                              static_cast<int>(signer.private_key_pem.size())),
              BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!cert || !key)
    return absl::InvalidArgumentError("the token signing key or certificate is not PEM");
  unsigned char* der = nullptr;
  const int der_len = i2d_X509(cert.get(), &der);
  if (der_len <= 0) return absl::InternalError("cannot encode the token certificate");
  const std::string der_b64 = http::Base64(
      absl::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(der_len)));
  OPENSSL_free(der);

  unsigned char nonce[16];
  RAND_bytes(nonce, sizeof(nonce));
  const int64_t t = absl::ToUnixSeconds(now);
  const json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"x5c", json::array({der_b64})}};
  const json claims = {{"iss", signer.issuer},
                       {"sub", subject},
                       {"aud", service},
                       {"iat", t},
                       {"nbf", t - 10},
                       {"exp", t + absl::ToInt64Seconds(ttl)},
                       {"jti", absl::BytesToHexString(absl::string_view(
                                   reinterpret_cast<const char*>(nonce), sizeof(nonce)))},
                       {"access", AccessJson(access)}};
  const std::string input = absl::StrCat(B64Url(header.dump()), ".", B64Url(claims.dump()));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t sig_len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return absl::InternalError("cannot sign the registry token");
  }
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return absl::InternalError("cannot sign the registry token");
  }
  sig.resize(sig_len);
  return absl::StrCat(input, ".", B64Url(sig));
}

}  // namespace c2d::oci
