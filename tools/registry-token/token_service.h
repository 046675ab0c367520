#pragma once

// The registry's token service (Distribution `auth: token`, the Docker token
// protocol): GET /token?service=S&scope=repository:NAME:ACTIONS with Basic
// credentials answers {"token": JWT, "expires_in": …}. The platform's
// credentials get what they ask for; a grant (libs/oci/access.h) gets what
// it asks for and the grant allows; anything else gets 401. Stateless: any
// number of replicas can serve one registry.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/httpd/message.h"
#include "libs/oci/access.h"

namespace c2d::registry_token {

struct Config {
  std::string address = "127.0.0.1:0";   // C2D_REGISTRY_TOKEN_ADDR
  oci::TokenSigner signer;               // C2D_REGISTRY_TOKEN_KEY, _CERT (files), _ISSUER
  std::string service = "c2d-registry";  // C2D_REGISTRY_SERVICE: the registry's name
  std::string platform_user;             // C2D_REGISTRY_USER
  std::string platform_password;         // C2D_REGISTRY_PASSWORD
  absl::Duration token_ttl = absl::Minutes(5);

  static absl::StatusOr<Config> FromEnv();
};

httpd::Response HandleToken(const Config& config, const httpd::Request& request);

}  // namespace c2d::registry_token
