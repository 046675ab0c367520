#pragma once

// The JSON Web Signatures that carry every ACME POST (RFC 8555 §6.2): the
// flattened JSON serialization (RFC 7515 §7.2.2) with an ES256 signature
// and a protected header of exactly alg, nonce, url and either jwk (for
// newAccount, before the account has a URL) or kid (the account URL).

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/crypto/x509.h"

namespace c2d::acme {

// {"protected": b64url(header), "payload": b64url(payload), "signature":
// b64url(ES256(protected "." payload))}. An empty `kid` puts the public JWK
// in the header instead. An empty `payload` is a POST-as-GET (the payload
// member is "", RFC 8555 §6.3); otherwise it is the JSON text to send.
absl::StatusOr<std::string> SignJws(const crypto::EcKey& key, absl::string_view kid,
                                    absl::string_view nonce, absl::string_view url,
                                    absl::string_view payload);

}  // namespace c2d::acme
