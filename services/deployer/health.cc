#include "services/deployer/health.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/http/client.h"

namespace c2d::deployer {
namespace {

// A TCP connect to host:port within `timeout`.
ProbeResult TcpProbe(const std::string& address, absl::Duration timeout) {
  const absl::Time start = absl::Now();
  size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  std::string port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (colon == std::string::npos || getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) {
    return {false, absl::Now() - start, absl::StrCat("cannot resolve ", address)};
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = fd < 0 ? -1 : connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  ProbeResult result;
  if (rc == 0) {
    result.ok = true;
  } else if (fd >= 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    int err = 0;
    socklen_t len = sizeof err;
    if (ready == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
      result.ok = true;
    } else {
      result.detail = ready == 0 ? absl::StrCat("timed out after ", absl::FormatDuration(timeout))
                                 : std::strerror(err != 0 ? err : errno);
    }
  } else {
    result.detail = std::strerror(errno);
  }
  if (fd >= 0) close(fd);
  if (result.ok) result.detail = "connected";
  result.latency = absl::Now() - start;
  return result;
}

}  // namespace

v1::HealthCheck WithDefaults(v1::HealthCheck c) {
  if (c.interval_s() <= 0) c.set_interval_s(10);
  if (c.timeout_s() <= 0) c.set_timeout_s(2);
  if (c.healthy_threshold() <= 0) c.set_healthy_threshold(1);
  if (c.unhealthy_threshold() <= 0) c.set_unhealthy_threshold(3);
  if (c.start_period_s() < 0) c.set_start_period_s(30);
  return c;
}

absl::Duration WorkerSettle(const v1::ServiceSpec& spec) {
  if (!spec.has_health_check()) return absl::Seconds(2);
  return absl::Seconds(std::max(0, spec.health_check().start_period_s()));
}

absl::Duration GateDeadline(const v1::HealthCheck& check) {
  v1::HealthCheck c = WithDefaults(check);
  return absl::Seconds(c.start_period_s()) +
         c.unhealthy_threshold() * absl::Seconds(c.interval_s());
}

ProbeResult Probe(const std::string& address, const v1::HealthCheck& check) {
  const v1::HealthCheck c = WithDefaults(check);
  const absl::Duration timeout = absl::Seconds(c.timeout_s());
  if (c.path().empty()) return TcpProbe(address, timeout);
  const absl::Time start = absl::Now();
  auto r = http::Send({.url = absl::StrCat("http://", address, c.path()),
                       .headers = {{"User-Agent", "c2d-health-check"}},
                       .timeout = absl::ToChronoMilliseconds(timeout),
                       .connect_timeout = absl::ToChronoMilliseconds(timeout)});
  ProbeResult result;
  result.latency = absl::Now() - start;
  if (!r.ok()) {
    result.detail = absl::IsDeadlineExceeded(r.status())
                        ? absl::StrCat("timed out after ", absl::FormatDuration(timeout))
                        : std::string(r.status().message());
    return result;
  }
  result.ok = r->status >= 200 && r->status < 400;
  result.detail = absl::StrCat("HTTP ", r->status);
  return result;
}

Health HealthTracker::Record(bool ok, absl::Time at) {
  if (ok) {
    ++passes_;
    failures_ = 0;
    if (passes_ >= check_.healthy_threshold()) health_ = Health::kHealthy;
    return health_;
  }
  passes_ = 0;
  // Failures in the start period do not count against a booting instance.
  if (health_ == Health::kStarting && at < started_at_ + absl::Seconds(check_.start_period_s())) {
    return health_;
  }
  ++failures_;
  if (failures_ >= check_.unhealthy_threshold()) health_ = Health::kUnhealthy;
  return health_;
}

}  // namespace c2d::deployer
