#pragma once

// The loopback HTTP endpoint the ingress Caddy calls (tools/lib/caddy.sh):
//   GET /certificate?server_name=NAME   at every TLS handshake
//       (tls.get_certificate.http): the certificate chain and its private
//       key, PEM, concatenated; 404 when c2d has none for NAME. Answered
//       from memory, each name re-read from PostgreSQL at most once a
//       second, so a renewal is served from the next handshake on without
//       any change to Caddy's configuration.
// /certificate and /http-check are answered on the I/O thread when the
// cache holds a fresh answer (httpd::ServerOptions::io_handler): they sit on
// every TLS handshake and plain-HTTP request of the ingress, and a handoff
// to a worker thread costs two context switches on a machine whose cores
// are busy with the handshakes themselves. Only a refresh from PostgreSQL
// and the ACME challenges go to the workers.
//   GET /http-check (Host: NAME, X-Uri: the original request URI)
//       before each plain-HTTP request: 308 to https:// when NAME has a
//       certificate from a publicly trusted CA (ACME); 204 otherwise, and the
//       ingress serves the request over HTTP. Names with a certificate of
//       c2d's own CA are not redirected: browsers that do not trust that CA
//       would refuse them.
//   GET /.well-known/acme-challenge/TOKEN   HTTP-01 answers.
// Keys never appear in logs.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/crypto/seal.h"
#include "libs/httpd/router.h"
#include "libs/httpd/server.h"
#include "libs/pg/pool.h"

namespace c2d::certs {

// TLS server names to served certificates, refreshed from PostgreSQL.
// Thread-safe.
class CertCache {
 public:
  struct Entry {
    std::string bundle;  // chain PEM, then the key PEM
    std::string issuer_kind;
  };

  CertCache(pg::Pool& pool, const crypto::MasterKeys& keys,
            absl::Duration refresh = absl::Seconds(1))
      : pool_(pool), keys_(keys), refresh_(refresh) {}

  // The certificate for `name` (exact, else the wildcard of its parent);
  // NotFound when there is none, InvalidArgument for a malformed name.
  absl::StatusOr<Entry> Lookup(const std::string& name);
  // Lookup's answer when the cache alone can give it (every name it needs
  // was read less than `refresh` ago); nullopt when it would have to read
  // PostgreSQL. Never blocks but on the cache's mutex.
  std::optional<absl::StatusOr<Entry>> LookupCached(const std::string& name);

 private:
  struct Cached {
    std::optional<Entry> entry;  // none: no certificate (cached too)
    int64_t updated_us = -1;
    absl::Time fetched;
  };
  absl::StatusOr<std::optional<Entry>> Exact(const std::string& name);
  // The cached answer for exactly `name` when it is fresh; nullopt when
  // absent or stale.
  std::optional<std::optional<Entry>> Fresh(const std::string& name);

  pg::Pool& pool_;
  const crypto::MasterKeys& keys_;
  const absl::Duration refresh_;
  absl::Mutex mu_;
  std::map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
};

class CertServer {
 public:
  // Serves on `address` (host:port; port 0 picks one).
  static absl::StatusOr<std::unique_ptr<CertServer>> Start(const std::string& address,
                                                           pg::Pool& pool,
                                                           const crypto::MasterKeys& keys);
  std::string address() const { return server_->address(); }
  void Shutdown() { server_->Shutdown(std::chrono::milliseconds(1000)); }

 private:
  CertServer(pg::Pool& pool, const crypto::MasterKeys& keys) : pool_(pool), cache_(pool, keys) {}
  void AddRoutes();
  // On the I/O thread: the answer when the cache has it, else nullopt (the
  // router runs on a worker).
  std::optional<httpd::Response> FromCache(httpd::Request& req);

  pg::Pool& pool_;
  CertCache cache_;
  httpd::Router router_;
  std::unique_ptr<httpd::Server> server_;
};

}  // namespace c2d::certs
