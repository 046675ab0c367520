#pragma once

// Per-app request counts and latencies at the ingress (DESIGN point 17).
//
// Caddy 2.6's own metrics carry no host, so they cannot tell apps apart.
// Instead the ingress sends each request's access-log entry (JSON) as one
// UDP datagram to C2D_INGRESS_LOG_ADDR (tools/lib/caddy.sh), where the
// deployer counts it under the service its host belongs to:
//   c2d_app_requests_total{service, code}        code: 1xx … 5xx
//   c2d_app_request_duration_seconds{service}    Caddy's duration
//   c2d_ingress_requests_unmatched_total         hosts of no service
// UDP because Caddy 2.6 refuses to start when a TCP log writer cannot
// connect, and a datagram lost costs one sample, never a request. Several
// deployer replicas on one host share the port (SO_REUSEPORT): the kernel
// spreads the datagrams, and Prometheus sums the replicas.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"

namespace c2d::deployer {

// What the metrics need of one access-log entry.
struct AccessEntry {
  std::string host;  // lower case, without a port
  int status = 0;
  double seconds = 0;
};

// One Caddy access-log line (an object with request.host, status and
// duration); InvalidArgument for anything else.
absl::StatusOr<AccessEntry> ParseAccessEntry(absl::string_view line);

// Hostname -> service id: the names the ingress serves (store.h's
// ServedNames), read from PostgreSQL at most every `ttl` (a host deployed
// since is counted from the next refresh on).
class HostIndex {
 public:
  HostIndex(pg::Pool& pool, absl::Duration ttl) : pool_(pool), ttl_(ttl) {}
  // The service of `host`, or "" when none has it.
  std::string ServiceOf(const std::string& host);

 private:
  pg::Pool& pool_;
  const absl::Duration ttl_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> services_ ABSL_GUARDED_BY(mu_);
  absl::Time read_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Counts entries into the families above.
class AccessCounter {
 public:
  using ServiceOf = std::function<std::string(const std::string& host)>;
  explicit AccessCounter(ServiceOf service_of) : service_of_(std::move(service_of)) {}
  void Count(const AccessEntry& entry);
  // A datagram: one entry (lines that are not are skipped).
  void CountDatagram(absl::string_view datagram);

 private:
  ServiceOf service_of_;
};

// Receives the datagrams on a UDP address (host:port; port 0 picks one)
// and counts each, on a thread of its own, until destroyed.
class AccessLogReceiver {
 public:
  static absl::StatusOr<std::unique_ptr<AccessLogReceiver>> Start(const std::string& address,
                                                                  AccessCounter& counter);
  ~AccessLogReceiver();
  AccessLogReceiver(const AccessLogReceiver&) = delete;
  AccessLogReceiver& operator=(const AccessLogReceiver&) = delete;
  int port() const { return port_; }

 private:
  AccessLogReceiver(int fd, int port, AccessCounter& counter);
  void Loop();

  const int fd_;
  const int port_;
  AccessCounter& counter_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace c2d::deployer
