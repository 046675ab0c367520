#include "services/certs/cert_server.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/common/status.h"
#include "libs/crypto/x509.h"
#include "services/certs/store.h"

namespace c2d::certs {
namespace {

// A TLS server name as c2d issues them: lower-case labels of letters,
// digits and inner hyphens, at most 63 each, 253 in all. Checked by hand,
// not by std::regex: it runs at every TLS handshake.
bool ValidServerName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  char prev = '.';
  for (char c : name) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
      if ((label == 0 && c == '-') || ++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return label > 0 && prev != '-';
}

// The Host header's name, without a port.
std::string HostName(const std::string& host) {
  std::string h = absl::AsciiStrToLower(host);
  if (size_t colon = h.rfind(':'); colon != std::string::npos && h.find(']') == std::string::npos) {
    h.resize(colon);
  }
  return h;
}

httpd::Response Text(int status, std::string body) {
  return {status, {{"Content-Type", "text/plain"}, {"Cache-Control", "no-store"}}, std::move(body)};
}

// GET /certificate's answer to a lookup.
httpd::Response CertificateResponse(const absl::StatusOr<CertCache::Entry>& entry) {
  if (!entry.ok()) return Text(absl::IsUnavailable(entry.status()) ? 503 : 404, "no certificate\n");
  return {200, {{"Content-Type", "application/x-pem-file"}}, entry->bundle};
}

// GET /http-check's answer to the lookup of `host`, the request's.
httpd::Response HttpCheckResponse(const absl::StatusOr<CertCache::Entry>& entry,
                                  const std::string& host, const httpd::Request& req) {
  if (!entry.ok() || entry->issuer_kind != "acme") return httpd::Response{204, {}, ""};
  std::string uri = req.Header("x-uri");
  if (uri.empty() || uri[0] != '/') uri = "/";
  return httpd::Response{308, {{"Location", absl::StrCat("https://", host, uri)}}, ""};
}

}  // namespace

absl::StatusOr<std::optional<CertCache::Entry>> CertCache::Exact(const std::string& name) {
  int64_t known = -1;
  std::optional<Entry> had;
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(name);
    if (it != cache_.end()) {
      if (absl::Now() - it->second.fetched < refresh_) return it->second.entry;
      known = it->second.updated_us;
      had = it->second.entry;
    }
  }
  auto served =
      pool_.Read("served certificate", [&](pg::Tx& tx) { return ServedFor(tx, name, known); });
  if (!served.ok()) return served.status();
  Cached fresh{std::nullopt, -1, absl::Now()};
  if (served->has_value()) {
    const Served& s = **served;
    fresh.updated_us = s.updated_us;
    if (s.chain_pem.empty() && had.has_value()) {  // unchanged since the last read
      fresh.entry = std::move(had);
    } else {
      C2D_ASSIGN_OR_RETURN(std::string der, keys_.Open(s.key, KeyAad(s.certificate_id)));
      C2D_ASSIGN_OR_RETURN(crypto::EcKey key, crypto::EcKey::FromPkcs8Der(der));
      C2D_ASSIGN_OR_RETURN(std::string key_pem, key.ToPem());
      fresh.entry = Entry{absl::StrCat(s.chain_pem, key_pem), s.issuer_kind};
    }
  }
  absl::MutexLock lock(&mu_);
  cache_[name] = fresh;
  return fresh.entry;
}

std::optional<std::optional<CertCache::Entry>> CertCache::Fresh(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = cache_.find(name);
  if (it == cache_.end() || absl::Now() - it->second.fetched >= refresh_) return std::nullopt;
  return it->second.entry;
}

std::optional<absl::StatusOr<CertCache::Entry>> CertCache::LookupCached(const std::string& name) {
  // The same steps as Lookup, each from the cache only.
  if (!ValidServerName(name)) return absl::InvalidArgumentError("not a server name");
  std::optional<std::optional<Entry>> exact = Fresh(name);
  if (!exact.has_value()) return std::nullopt;
  if (exact->has_value()) return **exact;
  if (size_t dot = name.find('.'); dot != std::string::npos) {
    std::optional<std::optional<Entry>> wild = Fresh("*" + name.substr(dot));
    if (!wild.has_value()) return std::nullopt;
    if (wild->has_value()) return **wild;
  }
  return absl::NotFoundError(absl::StrCat("no certificate for ", name));
}

absl::StatusOr<CertCache::Entry> CertCache::Lookup(const std::string& name) {
  if (!ValidServerName(name)) return absl::InvalidArgumentError("not a server name");
  C2D_ASSIGN_OR_RETURN(std::optional<Entry> exact, Exact(name));
  if (exact.has_value()) return *exact;
  if (size_t dot = name.find('.'); dot != std::string::npos) {
    C2D_ASSIGN_OR_RETURN(std::optional<Entry> wild, Exact("*" + name.substr(dot)));
    if (wild.has_value()) return *wild;
  }
  return absl::NotFoundError(absl::StrCat("no certificate for ", name));
}

absl::StatusOr<std::unique_ptr<CertServer>> CertServer::Start(const std::string& address,
                                                              pg::Pool& pool,
                                                              const crypto::MasterKeys& keys) {
  std::unique_ptr<CertServer> s(new CertServer(pool, keys));
  s->AddRoutes();
  httpd::ServerOptions options;
  options.address = address;
  options.max_body_bytes = 1024;  // only GETs
  CertServer* self = s.get();
  // One I/O thread answers from the cache (a few microseconds a request);
  // a second would only add wake-ups between threads. The workers read
  // PostgreSQL; more than the pool's connections (8 by default) would wait.
  options.io_threads = 1;
  options.workers = 8;
  options.io_handler = [self](httpd::Request& req) { return self->FromCache(req); };
  C2D_ASSIGN_OR_RETURN(s->server_, httpd::Server::Start(options, [self](httpd::Request& req) {
                         return self->router_.Dispatch(req);
                       }));
  return s;
}

std::optional<httpd::Response> CertServer::FromCache(httpd::Request& req) {
  // req.route as the router would set it: the metrics' label.
  if (req.method != "GET") return std::nullopt;
  if (req.path == "/certificate") {
    auto entry = cache_.LookupCached(absl::AsciiStrToLower(req.Query("server_name")));
    if (!entry.has_value()) return std::nullopt;
    req.route = "/certificate";
    return CertificateResponse(*entry);
  }
  if (req.path == "/http-check") {
    const std::string host = HostName(req.Header("host"));
    auto entry = cache_.LookupCached(host);
    if (!entry.has_value()) return std::nullopt;
    req.route = "/http-check";
    return HttpCheckResponse(*entry, host, req);
  }
  return std::nullopt;
}

void CertServer::AddRoutes() {
  router_.Add("GET", "/certificate", [this](httpd::Request& req) {
    return CertificateResponse(cache_.Lookup(absl::AsciiStrToLower(req.Query("server_name"))));
  });
  router_.Add("GET", "/http-check", [this](httpd::Request& req) {
    const std::string host = HostName(req.Header("host"));
    return HttpCheckResponse(cache_.Lookup(host), host, req);
  });
  router_.Add("GET", "/.well-known/acme-challenge/{token}", [this](httpd::Request& req) {
    auto answer = pool_.Read(
        "challenge", [&](pg::Tx& tx) { return ChallengeAnswer(tx, req.params.at("token")); });
    if (!answer.ok()) return Text(404, "no such challenge\n");
    return Text(200, *answer);
  });
}

}  // namespace c2d::certs
