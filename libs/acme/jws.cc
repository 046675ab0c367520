#include "libs/acme/jws.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "libs/common/status.h"

namespace c2d::acme {

absl::StatusOr<std::string> SignJws(const crypto::EcKey& key, absl::string_view kid,
                                    absl::string_view nonce, absl::string_view url,
                                    absl::string_view payload) {
  nlohmann::json header = {{"alg", "ES256"}, {"nonce", nonce}, {"url", url}};
  if (kid.empty()) {
    header["jwk"] = nlohmann::json::parse(key.PublicJwk());
  } else {
    header["kid"] = kid;
  }
  const std::string protected_b64 = crypto::Base64UrlNoPad(header.dump());
  // POST-as-GET signs an empty payload, which base64url leaves empty.
  const std::string payload_b64 = crypto::Base64UrlNoPad(payload);
  C2D_ASSIGN_OR_RETURN(std::string signature,
                       key.SignEs256(absl::StrCat(protected_b64, ".", payload_b64)));
  nlohmann::json jws = {{"protected", protected_b64},
                        {"payload", payload_b64},
                        {"signature", crypto::Base64UrlNoPad(signature)}};
  return jws.dump();
}

}  // namespace c2d::acme
