#include "libs/rpc/repo_url.h"

#include <arpa/inet.h>

#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/c2d/v1/common.pb.h"

namespace c2d::rpc {
namespace {

constexpr char kAccepted[] =
    "must be a remote git URL: https://host/path, http://host/path, ssh://host/path or "
    "user@host:path";

bool ValidHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-') return false;
    }
  }
  return true;
}

// Checks `host` (brackets already removed when `bracketed`) and stores it.
absl::Status CheckHost(absl::string_view host, bool bracketed, RepoUrl* out) {
  std::string h = absl::AsciiStrToLower(host);
  if (bracketed) {
    in6_addr v6{};
    if (inet_pton(AF_INET6, h.c_str(), &v6) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("\"[", host, "]\" is not an IPv6 address"));
    }
    if (std::string why = ForbiddenAddress(v6); !why.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("host ", h, " is ", why));
    }
  } else {
    // inet_aton also takes the legacy forms ("127.1", "2130706433", "0x7f.1")
    // that resolvers and curl accept: judge them as the address they are.
    in_addr v4{};
    if (inet_aton(h.c_str(), &v4) == 1) {
      if (std::string why = ForbiddenAddress(v4); !why.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("host ", h, " is ", why));
      }
    } else if (!ValidHostName(h)) {
      return absl::InvalidArgumentError(absl::StrCat("\"", host, "\" is not a valid host name"));
    }
    if (h == "localhost" || absl::EndsWith(h, ".localhost") || h == "localhost.") {
      return absl::InvalidArgumentError(absl::StrCat("host ", h, " is this machine"));
    }
  }
  out->host = std::move(h);
  return absl::OkStatus();
}

// host, [v6] or host:port / [v6]:port (after any userinfo).
absl::Status ParseHostPort(absl::string_view hostport, bool port_allowed, RepoUrl* out) {
  absl::string_view host = hostport, port;
  bool bracketed = false;
  if (absl::StartsWith(hostport, "[")) {
    size_t close = hostport.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("an IPv6 host lacks its closing ']'");
    }
    host = hostport.substr(1, close - 1);
    port = hostport.substr(close + 1);
    bracketed = true;
    if (!port.empty() && port.front() != ':') {
      return absl::InvalidArgumentError("unexpected text after the IPv6 host");
    }
    if (!port.empty()) port.remove_prefix(1);
  } else if (size_t colon = hostport.find(':'); colon != absl::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (!port.empty() || absl::EndsWith(hostport, ":")) {
    int p = 0;
    if (!port_allowed || !absl::SimpleAtoi(port, &p) || p < 1 || p > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("\"", port, "\" is not a valid port"));
    }
    out->port = p;
  }
  return CheckHost(host, bracketed, out);
}

absl::StatusOr<RepoUrl> ParseLocal(absl::string_view path, absl::string_view root) {
  namespace fs = std::filesystem;
  if (root.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kAccepted, " (local paths are not accepted here)"));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return absl::InvalidArgumentError("a local path must not contain \"..\"");
  }
  fs::path p = fs::path(std::string(path)).lexically_normal();
  fs::path r = fs::path(std::string(root)).lexically_normal();
  std::string ps = p.string(), rs = r.string();
  if (!rs.empty() && rs.back() == '/') rs.pop_back();
  if (!absl::StartsWith(ps, rs + "/") || ps.size() == rs.size() + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("local path ", ps, " is outside C2D_LOCAL_REPO_ROOT (", rs, ")"));
  }
  RepoUrl out;
  out.kind = RepoUrl::Kind::kLocal;
  out.path = ps;
  return out;
}

}  // namespace

absl::StatusOr<RepoUrl> ParseRepoUrl(absl::string_view url, absl::string_view local_repo_root) {
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '\\') {
      return absl::InvalidArgumentError("must not contain spaces, control characters or '\\'");
    }
  }
  if (absl::StartsWith(url, "/")) return ParseLocal(url, local_repo_root);
  if (absl::StartsWith(absl::AsciiStrToLower(url.substr(0, 7)), "file://")) {
    absl::string_view path = url.substr(7);
    if (!absl::StartsWith(path, "/")) {
      return absl::InvalidArgumentError("a file:// URL must name an absolute path");
    }
    return ParseLocal(path, local_repo_root);
  }
  RepoUrl out;
  if (size_t sep = url.find("://"); sep != absl::string_view::npos) {
    out.scheme = absl::AsciiStrToLower(url.substr(0, sep));
    if (out.scheme != "https" && out.scheme != "http" && out.scheme != "ssh") {
      return absl::InvalidArgumentError(
          absl::StrCat(kAccepted, " (the scheme \"", out.scheme, "\" is not accepted)"));
    }
    absl::string_view rest = url.substr(sep + 3);
    size_t slash = rest.find('/');
    if (slash == absl::string_view::npos || slash + 1 == rest.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kAccepted, " (the repository path is missing)"));
    }
    absl::string_view authority = rest.substr(0, slash);
    if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
      authority.remove_prefix(at + 1);
    }
    if (absl::Status s = ParseHostPort(authority, true, &out); !s.ok()) return s;
    return out;
  }
  // scp-style [user@]host:path, git's rule: a ':' before any '/'.
  size_t colon = url.find(':');
  size_t slash = url.find('/');
  if (absl::StartsWith(url, "[")) colon = url.find(':', url.find(']'));
  // "<transport>::<address>" runs a git remote helper (ext:: runs commands).
  if (colon == absl::string_view::npos || (slash != absl::string_view::npos && slash < colon) ||
      colon + 1 == url.size() || url[colon + 1] == ':') {
    return absl::InvalidArgumentError(kAccepted);
  }
  absl::string_view hostpart = url.substr(0, colon);
  if (size_t at = hostpart.rfind('@'); at != absl::string_view::npos) {
    hostpart.remove_prefix(at + 1);
  }
  out.scheme = "ssh";
  if (absl::Status s = ParseHostPort(hostpart, false, &out); !s.ok()) return s;
  return out;
}

std::string ForbiddenAddress(const in_addr& v4) {
  const uint32_t a = ntohl(v4.s_addr);
  auto in = [a](uint32_t net, int bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
  if (in(0x00000000, 8)) return "an unspecified address";
  if (in(0x7f000000, 8)) return "a loopback address";
  if (in(0xa9fe0000, 16)) return "a link-local address";
  if (in(0xe0000000, 4)) return "a multicast address";
  if (in(0xf0000000, 4)) return "a reserved address";
  if (in(0x0a800000, 10)) return "in c2d's container networks (10.128.0.0/10)";
  return "";
}

std::string ForbiddenAddress(const in6_addr& v6) {
  if (IN6_IS_ADDR_UNSPECIFIED(&v6)) return "an unspecified address";
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return "a loopback address";
  if (IN6_IS_ADDR_V4MAPPED(&v6) || IN6_IS_ADDR_V4COMPAT(&v6)) {
    in_addr v4{};
    std::memcpy(&v4, v6.s6_addr + 12, 4);
    return ForbiddenAddress(v4);
  }
  if (IN6_IS_ADDR_LINKLOCAL(&v6) || IN6_IS_ADDR_SITELOCAL(&v6)) return "a link-local address";
  if (IN6_IS_ADDR_MULTICAST(&v6)) return "a multicast address";
  return "";
}

std::string ForbiddenAddressLiteral(absl::string_view text) {
  std::string t(text);
  in_addr v4{};
  if (inet_pton(AF_INET, t.c_str(), &v4) == 1) return ForbiddenAddress(v4);
  in6_addr v6{};
  if (inet_pton(AF_INET6, t.c_str(), &v6) == 1) return ForbiddenAddress(v6);
  return "";
}

std::string RedactUrl(absl::string_view url) {
  size_t scheme = url.find("://");
  size_t at = url.find('@');
  size_t host_start = scheme == absl::string_view::npos ? 0 : scheme + 3;
  size_t slash = url.find('/', host_start);
  if (at == absl::string_view::npos || at < host_start ||
      (slash != absl::string_view::npos && at > slash)) {
    return std::string(url);
  }
  return absl::StrCat(url.substr(0, host_start), "***", url.substr(at));
}

absl::StatusOr<std::string> SealUrl(const crypto::MasterKeys& keys, const std::string& url,
                                    const std::string& aad) {
  if (RedactUrl(url) == url) return std::string();
  auto sealed = keys.Seal(url, aad);
  if (!sealed.ok()) return sealed.status();
  v1::EncryptedValue v;
  v.set_key_id(sealed->key_id);
  v.set_wrapped_data_key(sealed->wrapped_key);
  v.set_nonce(sealed->nonce);
  v.set_ciphertext(sealed->ciphertext);
  return v.SerializeAsString();
}

absl::StatusOr<std::string> OpenUrl(const crypto::MasterKeys& keys, const std::string& sealed,
                                    const std::string& aad) {
  v1::EncryptedValue v;
  if (!v.ParseFromString(sealed) || v.ciphertext().empty()) {
    return absl::DataLossError("a sealed repository URL is unreadable");
  }
  return keys.Open({v.key_id(), v.wrapped_data_key(), v.nonce(), v.ciphertext()}, aad);
}

}  // namespace c2d::rpc
