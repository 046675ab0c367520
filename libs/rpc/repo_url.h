#pragma once

// Where a build may fetch a tenant's code from. A repository URL is a remote
// git URL (https://, http://, ssh:// or scp-style user@host:path) whose host
// is not this machine's loopback, a link-local address or c2d's container
// networks; a local path is accepted only below the operator's
// C2D_LOCAL_REPO_ROOT (the bundled sample, tests), and never otherwise.
//
// ParseRepoUrl is the syntactic check (the gateway's and the builder's, no
// I/O). A host name can still resolve to a forbidden address, and resolve
// differently a second later: the builder resolves it once, checks every
// address with ForbiddenAddress, and pins git to the address it checked
// (services/builder/git.cc).

#include <netinet/in.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/crypto/seal.h"

namespace c2d::rpc {

struct RepoUrl {
  enum class Kind { kRemote, kLocal };
  Kind kind = Kind::kRemote;
  std::string scheme;  // "https", "http" or "ssh" (scp-style too); empty for kLocal
  std::string host;    // a DNS name or an IP literal, without brackets
  int port = 0;        // 0 = the scheme's default
  std::string path;    // kLocal: the normalised absolute path
};

// InvalidArgument (a sentence saying what is wrong, without the field name)
// for anything else. `local_repo_root` empty: no local path is accepted.
absl::StatusOr<RepoUrl> ParseRepoUrl(absl::string_view url, absl::string_view local_repo_root);

// Why a build may not connect to `address` (IPv4 or IPv6), or "" if it may:
// loopback, unspecified, link-local, multicast, broadcast and c2d's own
// container networks (10.128.0.0/10) are off limits. IPv4-mapped IPv6
// addresses are judged as IPv4.
std::string ForbiddenAddress(const in_addr& v4);
std::string ForbiddenAddress(const in6_addr& v6);
// The same for a textual IP literal; "" also when `text` is no IP literal.
std::string ForbiddenAddressLiteral(absl::string_view text);

// The URL with the credentials in it (user:token@) replaced by "***", for
// logs and answers: "https://***@host/o/r.git". Unchanged without any.
std::string RedactUrl(absl::string_view url);

// A URL with credentials is stored sealed: the whole URL as a serialized
// c2d.v1.EncryptedValue bound to `aad` (the row it belongs to). "" for a
// URL without credentials (nothing to hide; store it as it is).
absl::StatusOr<std::string> SealUrl(const crypto::MasterKeys& keys, const std::string& url,
                                    const std::string& aad);
// The URL SealUrl sealed; DataLoss when the bytes are not a sealed value.
absl::StatusOr<std::string> OpenUrl(const crypto::MasterKeys& keys, const std::string& sealed,
                                    const std::string& aad);

}  // namespace c2d::rpc
