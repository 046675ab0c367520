// c2d-bench-tls: new TLS handshakes per second, and their latency, through
// the ingress Caddy for a certificate c2d serves (Caddy asks the certs
// endpoint at every handshake, tls.get_certificate.http, as
// tools/lib/caddy.sh configures it) against the same Caddy serving a
// certificate file it loaded at start, side by side in one run (target: c2d's
// rate >= 0.8x the file's), then the internal CA's issuance time.
// tools/bench/tls drives it in three steps, with Caddy started between the
// first two:
//
//   c2d-bench-tls setup DIR
//       c2d's internal CA (certs::InternalCa::LoadOrCreate) issues two
//       certificates: one for kServedName, stored as certs::Issuance stores
//       one (a project, a web service, its default domain, and an issued
//       certificate row whose key is sealed under certs::KeyAad); one for
//       kFileName, written to DIR/file.crt (the chain) and DIR/file.key.
//       DIR/ca.pem gets the CA's certificate.
//   c2d-bench-tls run DIR CERTS_ADDR SERVED_ADDR FILE_ADDR SECONDS
//       serves the certs endpoint (certs::CertServer) on CERTS_ADDR, which
//       Caddy's server at SERVED_ADDR asks for kServedName's certificate;
//       Caddy's server at FILE_ADDR serves DIR/file.crt from memory. Then
//       measures each server for SECONDS: a 1 s warm-up of each, then halves
//       of SECONDS/2 in the order c2d, file, file, c2d, so that a drift in the
//       machine's load over the run weighs on both sides alike.
//
// The two names differ because Caddy looks a server name up in its own
// certificate cache before it asks get_certificate: a file certificate for
// kServedName would answer SERVED_ADDR's handshakes too, and the certs
// endpoint would never be asked. Both certificates are alike otherwise (P-256
// keys, the same CA, the leaf alone as c2d serves it).
//
// Each of C2D_BENCH_TLS_THREADS client threads (default 8), per connection:
// a new TCP connection, a full TLS 1.3 handshake (SNI, no session
// resumption, the chain verified against DIR/ca.pem and the name checked),
// one HTTP/1.1 GET with "Connection: close", its response read to the end.
// A handshake's latency runs from connect() to the end of the TLS handshake.
// With C2D_BENCH_TLS_CADDY_PID set, it also prints Caddy's CPU time per
// handshake on each side (from /proc), the server's share of the work.
// Exits 1 when any connection failed (after printing the figures).
//
//   c2d-bench-tls issue COUNT
//       issuance time with c2d's internal CA, not ACME: COUNT renewals of
//       kServedName's certificate, each as the issue_cert job makes one
//       (a new P-256 key, the certificate signed, the key sealed, the row
//       stored in one transaction), timed one by one; prints p50 and max.
//
// C2D_DATABASE_URL (a migrated database) and C2D_MASTER_KEY must be set.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/env.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/crypto/seal.h"
#include "libs/crypto/x509.h"
#include "libs/metrics/metrics.h"
#include "libs/pg/pool.h"
#include "services/certs/acme_issuer.h"
#include "services/certs/cert_server.h"
#include "services/certs/internal_ca.h"
#include "services/certs/store.h"
#include "tools/bench/must.h"

namespace {

using namespace c2d;
using Clock = std::chrono::steady_clock;

constexpr char kServedName[] = "bench.tls.localhost";  // from the certs endpoint
constexpr char kFileName[] = "file.tls.localhost";     // from DIR/file.crt
constexpr absl::Duration kLifetime = absl::Hours(24);
constexpr std::chrono::seconds kIoTimeout{5};  // any one connect, read or write
constexpr std::chrono::seconds kWarmUp{1};

// The rows certs::SyncDefaultDomains and certs::Issuance leave behind for a
// routed service, made directly (the bench runs no sweep and no job).
constexpr pg::Statement kInsertProject{"bench_tls_insert_project",
                                       "INSERT INTO projects (id, name) VALUES ($1, 'bench')"};
constexpr pg::Statement kInsertService{
    "bench_tls_insert_service",
    "INSERT INTO services (id, project_id, name, type, repo_url, port) "
    "VALUES ($1, $2, 'web', 'web', 'https://example.org/bench.git', 8080)"};
constexpr pg::Statement kInsertDomain{
    "bench_tls_insert_domain",
    "INSERT INTO domains (id, service_id, project_id, hostname, kind, verification_state, "
    "verified_at) VALUES ($1, $2, $3, $4, 'default', 'verified', now())"};
constexpr pg::Statement kInsertCertificate{
    "bench_tls_insert_certificate",
    "INSERT INTO certificates (id, domain_id, hostnames, issuer_kind) "
    "VALUES ($1, $2, ARRAY[$3], 'internal')"};
constexpr pg::Statement kInsertAcmeCertificate{
    "bench_tls_insert_acme_certificate",
    "INSERT INTO certificates (id, domain_id, hostnames, issuer_kind) "
    "VALUES ($1, $2, ARRAY[$3], 'acme')"};
constexpr pg::Statement kServedService{
    "bench_tls_served_service", "SELECT service_id, project_id FROM domains WHERE hostname = $1"};
constexpr pg::Statement kServedCertificate{
    "bench_tls_served_certificate", "SELECT id FROM certificates WHERE hostnames @> ARRAY[$1]"};

using bench::Die;
using bench::Must;

void WriteFile(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  out.close();
  if (!out) Die(absl::StrCat("cannot write ", path.string()));
}

// --- setup ---

// Stores `issued` as certificate `cert`'s, in `tx`, as certs::Issuance does.
absl::Status StoreCertificate(pg::Tx& tx, const crypto::MasterKeys& keys, const std::string& cert,
                              const certs::Issued& issued) {
  auto key = keys.Seal(issued.key_der, certs::KeyAad(cert));
  if (!key.ok()) return key.status();
  const crypto::CertificateInfo& info = issued.info;
  // Renewal is never due within the run.
  return certs::StoreIssued(tx, cert, issued.chain_pem, *key, info.not_before, info.not_after,
                            info.serial_hex, info.issuer, info.not_after);
}

void StoreServed(pg::Pool& pool, const crypto::MasterKeys& keys, const certs::Issued& issued) {
  const std::string project = ids::New("prj"), service = ids::New("svc");
  const std::string domain = ids::New("dom"), cert = ids::New("crt");
  Must(pool.Transact("store the served certificate",
                     [&](pg::Tx& tx) {
                       tx.Exec(kInsertProject, project);
                       tx.Exec(kInsertService, service, project);
                       tx.Exec(kInsertDomain, domain, service, project, std::string(kServedName));
                       tx.Exec(kInsertCertificate, cert, domain, std::string(kServedName));
                       return StoreCertificate(tx, keys, cert, issued);
                     }),
       "store the served certificate");
}

int Setup(const std::filesystem::path& dir) {
  const crypto::MasterKeys keys = Must(crypto::MasterKeys::FromEnv(), "C2D_MASTER_KEY");
  pg::Pool pool(Must(pg::PoolOptions::FromEnv("c2d-bench-tls"), "database settings"));
  const certs::InternalCa ca = Must(certs::InternalCa::LoadOrCreate(pool, keys), "internal CA");
  StoreServed(pool, keys, Must(ca.Issue({kServedName}, kLifetime), "issue the served certificate"));
  const certs::Issued file = Must(ca.Issue({kFileName}, kLifetime), "issue the file certificate");
  const crypto::EcKey key = Must(crypto::EcKey::FromPkcs8Der(file.key_der), "the file's key");
  WriteFile(dir / "file.crt", file.chain_pem);
  WriteFile(dir / "file.key", Must(key.ToPem(), "the file's key as PEM"));
  std::filesystem::permissions(
      dir / "file.key", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  WriteFile(dir / "ca.pem", ca.certificate_pem());
  return 0;
}

// --- the client ---

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// TLS 1.3 only, the CA's certificate the only trust anchor, and nothing that
// could resume a session: every handshake is a full one.
SslCtxPtr ClientContext(const std::string& ca_file) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) Die("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // No tickets; and Caddy may close after the response without close_notify.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
    Die("cannot load " + ca_file);
  }
  return ctx;
}

struct Target {
  std::string label;
  std::string name;  // SNI, Host, and the name the certificate must carry
  sockaddr_in addr{};
};

Target MakeTarget(std::string label, std::string name, const std::string& address) {
  Target t{std::move(label), std::move(name)};
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      inet_pton(AF_INET, address.substr(0, colon).c_str(), &t.addr.sin_addr) != 1) {
    Die("not an IPv4 host:port: " + address);
  }
  t.addr.sin_family = AF_INET;
  t.addr.sin_port = htons(static_cast<uint16_t>(port));
  return t;
}

// OpenSSL's reason for the failed `op`, or errno's.
absl::Status SslError(const char* op, SSL* ssl, int rc) {
  const int err = SSL_get_error(ssl, rc);
  const unsigned long e = ERR_get_error();
  std::string why;
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    why = buf;
  } else if (err == SSL_ERROR_SYSCALL && errno != 0) {
    why = std::strerror(errno);
  } else {
    why = absl::StrCat("SSL error ", err);
  }
  if (long v = SSL_get_verify_result(ssl); v != X509_V_OK) {
    absl::StrAppend(&why, " (", X509_verify_cert_error_string(v), ")");
  }
  return absl::UnavailableError(absl::StrCat(op, ": ", why));
}

// One connection as described at the top: the handshake's milliseconds.
absl::StatusOr<double> Connect(SSL_CTX* ctx, const Target& t) {
  ERR_clear_error();
  const auto start = Clock::now();
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  // Blocking I/O under a deadline: on Linux SO_SNDTIMEO bounds connect() too.
  const timeval tv{static_cast<time_t>(kIoTimeout.count()), 0};
  const int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&t.addr), sizeof t.addr) != 0) {
    return absl::UnavailableError(absl::StrCat("connect: ", std::strerror(errno)));
  }
  SslPtr ssl(SSL_new(ctx));
  if (!ssl) return absl::InternalError("SSL_new failed");
  SSL_set_fd(ssl.get(), fd.get());
  SSL_set_tlsext_host_name(ssl.get(), t.name.c_str());
  SSL_set1_host(ssl.get(), t.name.c_str());
  if (int rc = SSL_connect(ssl.get()); rc != 1) return SslError("handshake", ssl.get(), rc);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (SSL_session_reused(ssl.get())) return absl::InternalError("a session was resumed");

  const std::string request =
      absl::StrCat("GET / HTTP/1.1\r\nHost: ", t.name, "\r\nConnection: close\r\n\r\n");
  if (int rc = SSL_write(ssl.get(), request.data(), static_cast<int>(request.size())); rc <= 0) {
    return SslError("write", ssl.get(), rc);
  }
  std::string response;
  char buf[4096];
  for (;;) {
    const int n = SSL_read(ssl.get(), buf, sizeof buf);
    if (n > 0) {
      response.append(buf, n);
      continue;
    }
    if (SSL_get_error(ssl.get(), n) == SSL_ERROR_ZERO_RETURN) break;
    return SslError("read", ssl.get(), n);
  }
  if (!absl::StartsWith(response, "HTTP/1.1 200 ")) {
    return absl::InternalError("response: " + response.substr(0, response.find('\r')));
  }
  return ms;
}

// The certs endpoint's GET /certificate requests so far, and their handler
// time (c2d_http_request_seconds of this process's CertServer).
struct EndpointLoad {
  double requests = 0;
  double handler_seconds = 0;
};

EndpointLoad CertificateRequests() {
  EndpointLoad load;
  for (const prometheus::MetricFamily& family : metrics::Registry().Collect()) {
    if (family.name != "c2d_http_request_seconds") continue;
    for (const prometheus::ClientMetric& m : family.metric) {
      for (const prometheus::ClientMetric::Label& l : m.label) {
        if (l.name == "route" && l.value == "/certificate") {
          load.requests += m.histogram.sample_count;
          load.handler_seconds += m.histogram.sample_sum;
        }
      }
    }
  }
  return load;
}

// What a side did in one or more spells.
struct Tally {
  int64_t ok = 0;
  int64_t failed = 0;
  double seconds = 0;
  std::vector<double> latency_ms;
  std::string first_error;
  EndpointLoad endpoint;  // the certs endpoint's work meanwhile
  double caddy_cpu = 0;   // Caddy's CPU seconds meanwhile (user + system)

  void Add(Tally&& other) {
    ok += other.ok;
    failed += other.failed;
    seconds += other.seconds;
    endpoint.requests += other.endpoint.requests;
    endpoint.handler_seconds += other.endpoint.handler_seconds;
    caddy_cpu += other.caddy_cpu;
    latency_ms.insert(latency_ms.end(), other.latency_ms.begin(), other.latency_ms.end());
    if (first_error.empty()) first_error = std::move(other.first_error);
  }
  double Rate() const { return seconds > 0 ? ok / seconds : 0; }
};

// The CPU seconds (user + system) process `pid` has used so far, from
// /proc/PID/stat; 0 when `pid` is 0 or unreadable.
double CpuSeconds(int pid) {
  if (pid <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // After "pid (comm) ": state is field 3; utime and stime are 14 and 15.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 2), ' ');
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// `threads` clients connecting to `t` until `spell` has passed; the spell's
// seconds run until the last connection in flight has ended. `caddy_pid`
// (0: unknown) is the server's process, whose CPU time is taken too.
Tally Hammer(SSL_CTX* ctx, const Target& t, int threads, std::chrono::duration<double> spell,
             int caddy_pid) {
  // Thread i owns per_thread[i] until it is joined.
  std::vector<Tally> per_thread(threads);
  const EndpointLoad before = CertificateRequests();
  const double cpu_before = CpuSeconds(caddy_pid);
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(spell);
  std::vector<std::thread> clients;
  for (int i = 0; i < threads; ++i) {
    clients.emplace_back([&, i] {
      Tally& mine = per_thread[i];
      while (Clock::now() < deadline) {
        auto ms = Connect(ctx, t);
        if (ms.ok()) {
          ++mine.ok;
          mine.latency_ms.push_back(*ms);
          continue;
        }
        ++mine.failed;
        if (mine.first_error.empty()) mine.first_error = std::string(ms.status().message());
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // no busy loop on a dead side
      }
    });
  }
  for (std::thread& c : clients) c.join();
  Tally all;
  for (Tally& mine : per_thread) all.Add(std::move(mine));
  all.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const EndpointLoad after = CertificateRequests();
  all.endpoint = {after.requests - before.requests, after.handler_seconds - before.handler_seconds};
  all.caddy_cpu = CpuSeconds(caddy_pid) - cpu_before;
  return all;
}

// The nearest-rank percentile q (0 < q <= 1) of sorted samples.
double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

int Run(const std::filesystem::path& dir, const std::string& certs_addr,
        const std::string& served_addr, const std::string& file_addr, double seconds) {
  const crypto::MasterKeys keys = Must(crypto::MasterKeys::FromEnv(), "C2D_MASTER_KEY");
  pg::Pool pool(Must(pg::PoolOptions::FromEnv("c2d-bench-tls"), "database settings"));
  const int threads = static_cast<int>(
      Must(env::GetInt("C2D_BENCH_TLS_THREADS", 8, 1, 512), "C2D_BENCH_TLS_THREADS"));
  const int caddy_pid = static_cast<int>(
      Must(env::GetInt("C2D_BENCH_TLS_CADDY_PID", 0, 0, 1 << 30), "C2D_BENCH_TLS_CADDY_PID"));
  auto server = Must(certs::CertServer::Start(certs_addr, pool, keys), "certs endpoint");
  SslCtxPtr ctx = ClientContext((dir / "ca.pem").string());
  Target sides[2] = {MakeTarget("c2d-served", kServedName, served_addr),
                     MakeTarget("static file", kFileName, file_addr)};

  // A mis-wired side fails here, with its reason, rather than as a rate of 0.
  for (const Target& t : sides) {
    if (auto ms = Connect(ctx.get(), t); !ms.ok()) {
      Die(absl::StrCat(t.label, " (", t.name, "): ", ms.status().message()));
    }
  }
  std::printf(
      "TLS handshakes through one Caddy: %s (certificate from the certs endpoint at each "
      "handshake) vs %s (certificate loaded from a file)\n"
      "%d client threads; per connection a new TCP connection, a full TLS 1.3 handshake (SNI, "
      "no resumption, verified against c2d's CA) and one HTTP/1.1 GET; latency from connect() "
      "to the handshake's end\n"
      "%.0f s per side after a %lld s warm-up of each, in halves: c2d-served, static file, "
      "static file, c2d-served\n",
      sides[0].name.c_str(), sides[1].name.c_str(), threads, seconds,
      static_cast<long long>(kWarmUp.count()));
  std::fflush(stdout);
  for (const Target& t : sides) Hammer(ctx.get(), t, threads, kWarmUp, caddy_pid);

  Tally tally[2];
  const std::chrono::duration<double> half(seconds / 2);
  for (int side : {0, 1, 1, 0}) {
    Tally spell = Hammer(ctx.get(), sides[side], threads, half, caddy_pid);
    std::printf("  %-12s %.1f s: %8.0f handshakes/s, %lld failed\n", sides[side].label.c_str(),
                spell.seconds, spell.Rate(), static_cast<long long>(spell.failed));
    std::fflush(stdout);
    tally[side].Add(std::move(spell));
  }
  server->Shutdown();

  for (Tally& t : tally) std::sort(t.latency_ms.begin(), t.latency_ms.end());
  std::printf("\n%-22s %14s %14s\n", "", sides[0].label.c_str(), sides[1].label.c_str());
  std::printf("%-22s %14.0f %14.0f\n", "handshakes/s", tally[0].Rate(), tally[1].Rate());
  std::printf("%-22s %14.2f %14.2f\n", "handshake p50 (ms)", Percentile(tally[0].latency_ms, 0.5),
              Percentile(tally[1].latency_ms, 0.5));
  std::printf("%-22s %14.2f %14.2f\n", "handshake p99 (ms)", Percentile(tally[0].latency_ms, 0.99),
              Percentile(tally[1].latency_ms, 0.99));
  std::printf("%-22s %14lld %14lld\n", "connections", static_cast<long long>(tally[0].ok),
              static_cast<long long>(tally[1].ok));
  // One request per c2d-served handshake (Caddy keeps no copy), none for the file.
  std::printf("%-22s %14.2f %14.2f\n", "endpoint GETs/handsh.",
              tally[0].ok ? tally[0].endpoint.requests / tally[0].ok : 0,
              tally[1].ok ? tally[1].endpoint.requests / tally[1].ok : 0);
  std::printf("%-22s %14.0f %14s\n", "endpoint handler (us)",
              tally[0].endpoint.requests
                  ? tally[0].endpoint.handler_seconds / tally[0].endpoint.requests * 1e6
                  : 0,
              "-");
  // What the server spends per handshake: the clients, which share the
  // machine here, would run elsewhere in production.
  double caddy_ms[2] = {0, 0};
  for (int side : {0, 1}) {
    if (tally[side].ok > 0) caddy_ms[side] = tally[side].caddy_cpu / tally[side].ok * 1e3;
  }
  if (caddy_pid > 0) {
    std::printf("%-22s %14.3f %14.3f\n", "Caddy CPU/handsh. (ms)", caddy_ms[0], caddy_ms[1]);
  }
  std::printf("%-22s %14lld %14lld\n", "failed", static_cast<long long>(tally[0].failed),
              static_cast<long long>(tally[1].failed));
  const double ratio = tally[1].Rate() > 0 ? tally[0].Rate() / tally[1].Rate() : 0;
  std::printf("ratio %.2f (target >= 0.8): c2d-served handshakes/s over the static file's\n",
              ratio);
  if (caddy_ms[0] > 0) {
    std::printf("Caddy alone: %.2f, its CPU per handshake for the file over the c2d-served one\n",
                caddy_ms[1] / caddy_ms[0]);
  }
  bool failed = false;
  for (int side : {0, 1}) {
    if (tally[side].failed == 0) continue;
    failed = true;
    std::printf("%s: first failure: %s\n", sides[side].label.c_str(),
                tally[side].first_error.c_str());
  }
  std::fflush(stdout);
  return failed ? 1 : 0;
}

// --- issuance ---

int Issue(int count) {
  const crypto::MasterKeys keys = Must(crypto::MasterKeys::FromEnv(), "C2D_MASTER_KEY");
  pg::Pool pool(Must(pg::PoolOptions::FromEnv("c2d-bench-tls"), "database settings"));
  const certs::InternalCa ca = Must(certs::InternalCa::LoadOrCreate(pool, keys), "internal CA");
  const std::string cert =
      Must(pool.Read("the served certificate",
                     [&](pg::Tx& tx) -> absl::StatusOr<std::string> {
                       pqxx::result r = tx.Exec(kServedCertificate, std::string(kServedName));
                       if (r.empty()) return absl::NotFoundError("none");
                       return r[0][0].as<std::string>();
                     }),
           "the served certificate");
  std::vector<double> ms;
  for (int i = 0; i < count; ++i) {
    const auto start = Clock::now();
    const certs::Issued issued = Must(ca.Issue({kServedName}, kLifetime), "issue");
    Must(pool.Transact("store the renewal",
                       [&](pg::Tx& tx) { return StoreCertificate(tx, keys, cert, issued); }),
         "store the renewal");
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf(
      "\nCertificate issuance by c2d's internal CA (private names such as *.localhost), %d "
      "renewals of %s one after another; each: a new P-256 key, the certificate signed, the key "
      "sealed, the row stored (one transaction)\n",
      count, kServedName);
  std::printf("%-22s %14.2f\n", "issuance p50 (ms)", Percentile(ms, 0.5));
  std::printf("%-22s %14.2f\n", "issuance max (ms)", ms.empty() ? 0 : ms.back());
  std::fflush(stdout);
  return 0;
}

// --- issuance by ACME ---

// A new certificate row for `name` (ACME), of the served name's service.
std::string NewAcmeCertificate(pg::Pool& pool, const std::string& name) {
  const std::string domain = ids::New("dom"), cert = ids::New("crt");
  Must(pool.Transact("a certificate to order",
                     [&](pg::Tx& tx) -> absl::Status {
                       pqxx::result s = tx.Exec(kServedService, std::string(kServedName));
                       if (s.empty()) return absl::NotFoundError("no served certificate: setup");
                       tx.Exec(kInsertDomain, domain, s[0][0].as<std::string>(),
                               s[0][1].as<std::string>(), name);
                       tx.Exec(kInsertAcmeCertificate, cert, domain, name);
                       return absl::OkStatus();
                     }),
       "a certificate to order");
  return cert;
}

// `count` certificates from the ACME CA at C2D_PEBBLE_DIRECTORY, one after
// another, each proven by HTTP-01: the CA fetches the answer from the certs
// endpoint, started here at `certs_addr` (its validation port).
int Acme(int count, const std::string& certs_addr) {
  certs::Config config;
  config.master_keys = Must(crypto::MasterKeys::FromEnv(), "C2D_MASTER_KEY");
  config.acme_directory = Must(env::GetRequired("C2D_PEBBLE_DIRECTORY"), "the CA");
  config.acme_ca_file = Must(env::GetRequired("C2D_PEBBLE_CA_FILE"), "the CA's TLS root");
  config.acme_timeout = std::chrono::seconds(60);
  pg::Pool pool(Must(pg::PoolOptions::FromEnv("c2d-bench-tls"), "database settings"));
  auto endpoint =
      Must(certs::CertServer::Start(certs_addr, pool, *config.master_keys), "the certs endpoint");
  certs::AcmeIssuer issuer(pool, config, nullptr);
  std::vector<double> ms;
  for (int i = 0; i < count; ++i) {
    const std::string cert = NewAcmeCertificate(pool, absl::StrCat("acme", i, ".bench.test"));
    const auto start = Clock::now();
    const certs::CertificateRow row = Must(
        pool.Read("the row", [&](pg::Tx& tx) { return certs::LoadCertificate(tx, cert); }), "row");
    const certs::Issued issued = Must(issuer.Issue(row), "ACME issuance");
    Must(pool.Transact(
             "store it",
             [&](pg::Tx& tx) { return StoreCertificate(tx, *config.master_keys, cert, issued); }),
         "store it");
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  endpoint->Shutdown();
  const double first = ms.front();
  std::vector<double> rest(ms.begin() + 1, ms.end());
  std::sort(rest.begin(), rest.end());
  std::printf(
      "\nCertificate issuance by ACME against Pebble (RFC 8555: order, HTTP-01 answered by the "
      "certs endpoint, finalize, download; Pebble's random badNonce refusals on), %d new "
      "certificates one after another, each stored sealed\n",
      count);
  std::printf("%-22s %14.0f\n", "first, with account (ms)", first);
  std::printf("%-22s %14.0f\n", "issuance p50 (ms)", Percentile(rest, 0.5));
  std::printf("%-22s %14.0f\n", "issuance max (ms)", rest.empty() ? 0 : rest.back());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a write to a connection Caddy closed fails, not kills
  c2d::log::Init("bench-tls", c2d::log::Level::kWarn);
  const std::string command = argc > 1 ? argv[1] : "";
  double seconds = 0;
  if (command == "setup" && argc == 3) return Setup(argv[2]);
  int count = 0;
  if (command == "issue" && argc == 3 && absl::SimpleAtoi(argv[2], &count) && count > 0) {
    return Issue(count);
  }
  if (command == "acme" && argc == 4 && absl::SimpleAtoi(argv[2], &count) && count > 1) {
    return Acme(count, argv[3]);
  }
  if (command == "run" && argc == 7 && absl::SimpleAtod(argv[6], &seconds) && seconds > 0) {
    return Run(argv[2], argv[3], argv[4], argv[5], seconds);
  }
  std::fprintf(stderr,
               "usage: c2d-bench-tls setup DIR\n"
               "       c2d-bench-tls run DIR CERTS_ADDR SERVED_ADDR FILE_ADDR SECONDS\n"
               "       c2d-bench-tls issue COUNT\n"
               "       c2d-bench-tls acme COUNT CERTS_ADDR   (C2D_PEBBLE_DIRECTORY, _CA_FILE)\n");
  return 2;
}
