#pragma once

// Who may do what in the image registry. The registry trusts tokens signed
// by c2d's registry token service (tools/registry-token, Distribution's
// `auth: token`); that service hands a token to a client that proves one of:
// - the platform's credentials (C2D_REGISTRY_USER / C2D_REGISTRY_PASSWORD):
//   everything, for c2d's own services and tools;
// - a grant: a short-lived, signed list of what its holder may do, minted
//   with a key derived from the platform password by a service that has it
//   (the builder for a build: pull the stacks and its own project's images,
//   push its own service's; the deployer for one pull of one image). A grant
//   is sent as the password of user kGrantUser.
// What a token carries is what was asked for (the scope) intersected with
// what the credentials allow.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace c2d::oci {

inline constexpr char kGrantUser[] = "c2d-grant";

// One entry of a token's "access" claim. `name` may end in "/*" in a grant:
// every repository below that path.
struct Access {
  std::string type = "repository";
  std::string name;
  std::vector<std::string> actions;  // "pull", "push", "delete", "*"
  bool operator==(const Access&) const = default;
};

// "repository:name:pull,push" (Docker's scope syntax), several separated by
// spaces as in one `scope` parameter. InvalidArgument on malformed input.
absl::StatusOr<std::vector<Access>> ParseScope(absl::string_view scope);
std::string ScopeString(const Access& access);

// The grant password for `access` until `expires`, signed with `key`.
std::string MintGrant(absl::string_view key, const std::vector<Access>& access, absl::Time expires);
// What a grant allows; Unauthenticated when it is forged, malformed or
// expired at `now`.
absl::StatusOr<std::vector<Access>> VerifyGrant(absl::string_view key, absl::string_view grant,
                                                absl::Time now);
// The key grants are signed with, from the platform's registry password.
std::string GrantKey(absl::string_view platform_password);

// `requested` cut down to what `allowed` permits (actions intersected, names
// matched exactly or below an allowed "prefix/*"); entries left with no
// action are dropped.
std::vector<Access> Permit(const std::vector<Access>& allowed,
                           const std::vector<Access>& requested);

// A Distribution registry bearer token (RS256 JWT, the signing certificate
// in its x5c header) for `subject`, audience `service`, carrying `access`.
struct TokenSigner {
  std::string private_key_pem;
  std::string certificate_pem;
  std::string issuer;
};
absl::StatusOr<std::string> SignToken(const TokenSigner& signer, const std::string& service,
                                      const std::string& subject, const std::vector<Access>& access,
                                      absl::Time now, absl::Duration ttl);

}  // namespace c2d::oci
