#include "libs/oci/registry.h"

#include <algorithm>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "nlohmann/json.hpp"

namespace c2d::oci {
namespace {

using nlohmann::json;

std::string PullScope(const std::string& repo) {
  return absl::StrCat("repository:", repo, ":pull");
}
std::string DeleteScope(const std::string& repo) {
  return absl::StrCat("repository:", repo, ":pull,push,delete");
}

// Parses `Bearer realm="…",service="…",scope="…"` into its parameters.
std::map<std::string, std::string> ChallengeParams(absl::string_view header) {
  std::map<std::string, std::string> out;
  size_t space = header.find(' ');
  if (space == absl::string_view::npos) return out;
  absl::string_view rest = header.substr(space + 1);
  while (!rest.empty()) {
    size_t eq = rest.find('=');
    if (eq == absl::string_view::npos) break;
    std::string key(absl::StripAsciiWhitespace(rest.substr(0, eq)));
    rest.remove_prefix(eq + 1);
    std::string value;
    if (!rest.empty() && rest[0] == '"') {
      size_t close = rest.find('"', 1);
      value = std::string(rest.substr(1, close == absl::string_view::npos ? rest.npos : close - 1));
      rest.remove_prefix(close == absl::string_view::npos ? rest.size() : close + 1);
    } else {
      size_t comma = rest.find(',');
      value = std::string(rest.substr(0, comma));
      rest.remove_prefix(comma == absl::string_view::npos ? rest.size() : comma);
    }
    out[key] = value;
    if (!rest.empty() && rest[0] == ',') rest.remove_prefix(1);
  }
  return out;
}

absl::Status StatusFor(const std::string& what, const http::Response& r) {
  std::string detail = r.body.substr(0, 500);
  json j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty() &&
      j["errors"][0].is_object() && j["errors"][0].contains("message") &&
      j["errors"][0]["message"].is_string()) {
    detail = j["errors"][0]["message"].get<std::string>().substr(0, 500);
  }
  std::string msg = absl::StrCat(what, ": HTTP ", r.status, detail.empty() ? "" : ": ", detail);
  switch (r.status) {
    case 401:
      return absl::UnauthenticatedError(msg);
    case 403:
      return absl::PermissionDeniedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 405:
      return absl::FailedPreconditionError(msg);  // e.g. deletes disabled on the registry
    default:
      return r.status >= 500 ? absl::UnavailableError(msg) : absl::UnknownError(msg);
  }
}

}  // namespace

const char kManifestAccept[] =
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

Registry::Registry(RegistryOptions options) : options_(std::move(options)) {}

std::string Registry::host() const {
  absl::string_view u = options_.url;
  size_t scheme = u.find("://");
  if (scheme != absl::string_view::npos) u.remove_prefix(scheme + 3);
  return std::string(u.substr(0, u.find('/')));
}

void Registry::Authorize(http::Request& request, const std::string& scope) {
  absl::MutexLock lock(&mu_);
  if (scheme_ == "basic") {
    request.user = options_.username;
    request.password = options_.password;
  } else if (scheme_ == "bearer") {
    auto it = tokens_.find(scope);
    if (it != tokens_.end() && it->second.expires > absl::Now()) {
      request.headers.emplace_back("Authorization", absl::StrCat("Bearer ", it->second.value));
    }
  }
}

absl::StatusOr<std::string> Registry::FetchToken(const std::string& challenge,
                                                 const std::string& scope) {
  auto params = ChallengeParams(challenge);
  if (params["realm"].empty()) {
    return absl::UnauthenticatedError("registry asked for a bearer token but named no realm");
  }
  std::string url = absl::StrCat(params["realm"], "?service=", http::UrlEncode(params["service"]),
                                 "&scope=", http::UrlEncode(scope));
  http::Request req{.url = url, .timeout = options_.timeout};
  req.user = options_.username;
  req.password = options_.password;
  auto r = http::Send(req);
  if (!r.ok()) return r.status();
  if (r->status != 200)
    return StatusFor(absl::StrCat("get a registry token from ", params["realm"]), *r);
  json j = json::parse(r->body, nullptr, false);
  std::string token;
  int expires_in = 60;
  if (j.is_object()) {
    for (const char* key : {"access_token", "token"}) {
      if (j.contains(key) && j[key].is_string()) token = j[key].get<std::string>();
    }
    if (j.contains("expires_in") && j["expires_in"].is_number_integer()) {
      expires_in = static_cast<int>(std::clamp<int64_t>(j["expires_in"].get<int64_t>(), 1, 86400));
    }
  }
  if (token.empty()) return absl::UnauthenticatedError("token service answered no token");
  absl::MutexLock lock(&mu_);
  // Renew a little early so a token never expires in flight.
  tokens_[scope] = Token{token, absl::Now() + absl::Seconds(std::max(expires_in - 10, 5))};
  return token;
}

absl::StatusOr<http::Response> Registry::Call(http::Request request, const std::string& scope) {
  request.timeout = options_.timeout;
  const std::string what = absl::StrCat(request.method, " ", request.url);
  absl::StatusOr<http::Response> last = absl::UnavailableError(what);
  for (int attempt = 1; attempt <= std::max(1, options_.attempts); ++attempt) {
    if (attempt > 1) std::this_thread::sleep_for(std::chrono::milliseconds(200 << (attempt - 2)));
    http::Request req = request;
    Authorize(req, scope);
    last = http::Send(req);
    if (last.ok() && last->status == 401) {
      // Answer the challenge once, then resend.
      std::string challenge = last->Header("WWW-Authenticate");
      if (absl::StartsWithIgnoreCase(challenge, "basic")) {
        absl::MutexLock lock(&mu_);
        scheme_ = "basic";
      } else if (absl::StartsWithIgnoreCase(challenge, "bearer")) {
        {
          absl::MutexLock lock(&mu_);
          scheme_ = "bearer";
        }
        auto token = FetchToken(challenge, scope);
        if (!token.ok()) return token.status();
      } else {
        return last;
      }
      req = request;
      Authorize(req, scope);
      last = http::Send(req);
    }
    if (!last.ok()) {
      if (absl::IsUnavailable(last.status()) || absl::IsDeadlineExceeded(last.status())) continue;
      return last;
    }
    if (last->status >= 500) continue;
    return last;
  }
  return last;
}

absl::Status Registry::Ping() {
  auto r = Call(http::Request{.url = absl::StrCat(options_.url, "/v2/")}, "");
  if (!r.ok()) return r.status();
  if (r->status != 200) return StatusFor("ping registry", *r);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Registry::ResolveDigest(const std::string& repo,
                                                    const std::string& reference) {
  http::Request req{.method = "HEAD",
                    .url = absl::StrCat(options_.url, "/v2/", repo, "/manifests/", reference),
                    .headers = {{"Accept", kManifestAccept}}};
  auto r = Call(req, PullScope(repo));
  if (!r.ok()) return r.status();
  if (r->status != 200) return StatusFor(absl::StrCat("resolve ", repo, ":", reference), *r);
  std::string digest = r->Header("Docker-Content-Digest");
  if (digest.empty()) {
    // Not every registry sends it on HEAD: hash the manifest itself.
    auto m = GetManifest(repo, reference);
    if (!m.ok()) return m.status();
    return m->digest;
  }
  return digest;
}

absl::StatusOr<Manifest> Registry::GetManifest(const std::string& repo,
                                               const std::string& reference) {
  http::Request req{.url = absl::StrCat(options_.url, "/v2/", repo, "/manifests/", reference),
                    .headers = {{"Accept", kManifestAccept}}};
  auto r = Call(req, PullScope(repo));
  if (!r.ok()) return r.status();
  if (r->status != 200) return StatusFor(absl::StrCat("get manifest ", repo, ":", reference), *r);
  auto m = ParseManifest(r->body);
  if (!m.ok()) {
    return absl::DataLossError(absl::StrCat("manifest of ", repo, ": ", m.status().message()));
  }
  m->media_type = r->Header("Content-Type");
  m->digest = r->Header("Docker-Content-Digest");
  if (m->digest.empty()) m->digest = absl::StrCat("sha256:", crypto::Sha256Hex(m->body));
  return m;
}

absl::StatusOr<Manifest> ParseManifest(const std::string& body) {
  Manifest m;
  m.body = body;
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) return absl::DataLossError("the manifest is not a JSON object");
  // A size the registry reports: 0 to 1 PiB; anything else is not a manifest.
  auto add = [&](const json& item) -> absl::Status {
    if (!item.is_object() || !item.contains("size")) return absl::OkStatus();
    const json& size = item["size"];
    constexpr int64_t kMax = int64_t{1} << 50;
    if (!size.is_number_integer() || size.get<int64_t>() < 0 || size.get<int64_t>() > kMax) {
      return absl::DataLossError("a size in the manifest is not a byte count");
    }
    m.total_size += size.get<int64_t>();  // at most 2^50 per item, a few thousand items
    return absl::OkStatus();
  };
  if (j.contains("config")) C2D_RETURN_IF_ERROR(add(j["config"]));
  for (const char* list : {"layers", "manifests"}) {
    if (!j.contains(list) || !j[list].is_array()) continue;
    if (j[list].size() > 10'000) return absl::DataLossError("the manifest lists too many items");
    for (const auto& item : j[list]) {
      C2D_RETURN_IF_ERROR(add(item));
      if (std::string(list) == "layers" && item.is_object() && item.contains("digest") &&
          item["digest"].is_string()) {
        m.layer_digests.push_back(item["digest"].get<std::string>());
      }
    }
  }
  return m;
}

absl::StatusOr<std::vector<std::string>> Registry::ListTags(const std::string& repo) {
  std::vector<std::string> tags;
  std::string url = absl::StrCat(options_.url, "/v2/", repo, "/tags/list?n=1000");
  for (int page = 0; page < 1000 && !url.empty(); ++page) {
    auto r = Call(http::Request{.url = url}, PullScope(repo));
    if (!r.ok()) return r.status();
    if (r->status != 200) return StatusFor(absl::StrCat("list tags of ", repo), *r);
    json j = json::parse(r->body, nullptr, false);
    if (j.is_object() && j.contains("tags") && j["tags"].is_array()) {
      for (const auto& t : j["tags"]) {
        if (t.is_string()) tags.push_back(t.get<std::string>());
      }
    }
    // Link: </v2/repo/tags/list?last=x&n=1000>; rel="next"
    std::string link = r->Header("Link");
    url.clear();
    if (size_t lt = link.find('<'), gt = link.find('>');
        lt != std::string::npos && gt != std::string::npos && gt > lt) {
      url = absl::StrCat(options_.url, link.substr(lt + 1, gt - lt - 1));
    }
  }
  return tags;
}

absl::Status Registry::PutManifest(const std::string& repo, const std::string& tag,
                                   const Manifest& manifest) {
  http::Request req{.method = "PUT",
                    .url = absl::StrCat(options_.url, "/v2/", repo, "/manifests/", tag),
                    .headers = {{"Content-Type", manifest.media_type}},
                    .body = manifest.body};
  auto r = Call(req, DeleteScope(repo));
  if (!r.ok()) return r.status();
  if (r->status != 201 && r->status != 200) {
    return StatusFor(absl::StrCat("tag ", repo, ":", tag), *r);
  }
  return absl::OkStatus();
}

absl::Status Registry::DeleteManifest(const std::string& repo, const std::string& digest) {
  http::Request req{.method = "DELETE",
                    .url = absl::StrCat(options_.url, "/v2/", repo, "/manifests/", digest)};
  auto r = Call(req, DeleteScope(repo));
  if (!r.ok()) return r.status();
  if (r->status != 202 && r->status != 200) {
    return StatusFor(absl::StrCat("delete ", repo, "@", digest), *r);
  }
  return absl::OkStatus();
}

}  // namespace c2d::oci
