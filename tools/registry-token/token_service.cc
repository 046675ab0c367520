#include "tools/registry-token/token_service.h"

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/common/env.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "nlohmann/json.hpp"

namespace c2d::registry_token {
namespace {

using nlohmann::json;

absl::StatusOr<std::string> ReadFile(const std::string& var) {
  C2D_ASSIGN_OR_RETURN(std::string path, env::GetRequired(var.c_str()));
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  if (!in || s.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(var, "=", path, ": cannot read the file"));
  }
  return s.str();
}

httpd::Response Answer(int status, const json& body) {
  httpd::Response r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}};
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"c2d-registry\"");
  r.body = body.dump();
  return r;
}

httpd::Response Refuse(int status, const std::string& code, const std::string& why) {
  return Answer(status, {{"errors", json::array({{{"code", code}, {"message", why}}})}});
}

}  // namespace

absl::StatusOr<Config> Config::FromEnv() {
  Config c;
  C2D_ASSIGN_OR_RETURN(c.address, env::GetAddress("C2D_REGISTRY_TOKEN_ADDR", c.address));
  C2D_ASSIGN_OR_RETURN(c.signer.private_key_pem, ReadFile("C2D_REGISTRY_TOKEN_KEY"));
  C2D_ASSIGN_OR_RETURN(c.signer.certificate_pem, ReadFile("C2D_REGISTRY_TOKEN_CERT"));
  c.signer.issuer = env::GetString("C2D_REGISTRY_TOKEN_ISSUER", "c2d");
  c.service = env::GetString("C2D_REGISTRY_SERVICE", c.service);
  C2D_ASSIGN_OR_RETURN(c.platform_user, env::GetRequired("C2D_REGISTRY_USER"));
  C2D_ASSIGN_OR_RETURN(c.platform_password, env::GetRequired("C2D_REGISTRY_PASSWORD"));
  return c;
}

httpd::Response HandleToken(const Config& config, const httpd::Request& request) {
  if (request.method != "GET" || request.path != "/token") {
    return Refuse(404, "NOT_FOUND", "only GET /token is served here");
  }
  if (request.Query("service") != config.service) {
    return Refuse(400, "INVALID_REQUEST", absl::StrCat("service must be ", config.service));
  }
  std::vector<oci::Access> requested;
  for (auto [it, end] = request.query.equal_range("scope"); it != end; ++it) {
    auto scope = oci::ParseScope(it->second);
    if (!scope.ok()) return Refuse(400, "INVALID_REQUEST", std::string(scope.status().message()));
    requested.insert(requested.end(), scope->begin(), scope->end());
  }
  // Basic credentials: the platform's, or a grant.
  const std::string header = request.Header("authorization");
  absl::string_view basic = header;
  std::string decoded;
  if (!absl::ConsumePrefix(&basic, "Basic ") || !absl::Base64Unescape(basic, &decoded) ||
      decoded.find(':') == std::string::npos) {
    return Refuse(401, "UNAUTHORIZED", "Basic credentials are required");
  }
  const std::string user = decoded.substr(0, decoded.find(':'));
  const std::string password = decoded.substr(decoded.find(':') + 1);
  std::vector<oci::Access> granted;
  if (user == config.platform_user &&
      crypto::ConstantTimeEquals(password, config.platform_password)) {
    granted = requested;
  } else if (user == oci::kGrantUser) {
    auto allowed = oci::VerifyGrant(oci::GrantKey(config.platform_password), password, absl::Now());
    if (!allowed.ok()) return Refuse(401, "UNAUTHORIZED", std::string(allowed.status().message()));
    granted = oci::Permit(*allowed, requested);
  } else {
    return Refuse(401, "UNAUTHORIZED", "unknown credentials");
  }
  const absl::Time now = absl::Now();
  auto token = oci::SignToken(config.signer, config.service, user, granted, now, config.token_ttl);
  if (!token.ok()) return Refuse(500, "UNKNOWN", std::string(token.status().message()));
  return Answer(200,
                {{"token", *token},
                 {"access_token", *token},
                 {"expires_in", absl::ToInt64Seconds(config.token_ttl)},
                 {"issued_at", absl::FormatTime(absl::RFC3339_sec, now, absl::UTCTimeZone())}});
}

}  // namespace c2d::registry_token
