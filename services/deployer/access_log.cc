#include "services/deployer/access_log.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/log.h"
#include "nlohmann/json.hpp"
#include "services/deployer/metrics.h"
#include "services/deployer/store.h"

namespace c2d::deployer {
namespace {

using json = nlohmann::json;

// "Host:port", "[v6]:port" or a bare host, as a lower-case name without
// the port or a trailing dot.
std::string HostOnly(absl::string_view host) {
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else if (size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return absl::AsciiStrToLower(host);
}

}  // namespace

absl::StatusOr<AccessEntry> ParseAccessEntry(absl::string_view line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("request") || !j["request"].is_object()) {
    return absl::InvalidArgumentError("not an access-log entry");
  }
  const json& host = j["request"].value("host", json());
  const json& status = j.value("status", json());
  const json& duration = j.value("duration", json());
  if (!host.is_string() || !status.is_number_integer() || !duration.is_number()) {
    return absl::InvalidArgumentError("an access-log entry needs request.host, status, duration");
  }
  AccessEntry e{HostOnly(host.get<std::string>()), status.get<int>(), duration.get<double>()};
  if (e.status < 100 || e.status > 599 || e.seconds < 0 || e.host.empty()) {
    return absl::InvalidArgumentError("an access-log entry out of range");
  }
  return e;
}

std::string HostIndex::ServiceOf(const std::string& host) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (now - read_at_ >= ttl_) {
    read_at_ = now;  // after a failure too: the next try is a ttl away
    // The names the ingress serves: each service's route and its verified
    // custom domains.
    auto read = pool_.Read("read app hostnames", [](pg::Tx& tx) { return ServedNames(tx); });
    if (read.ok()) {
      services_.clear();
      for (const auto& [service, names] : *read) {
        for (const std::string& name : names) services_[name] = service;
      }
    } else {
      log::Warn("cannot read app hostnames; counting by the last ones read",
                {{"error", read.status().ToString()}});
    }
  }
  auto it = services_.find(host);
  return it == services_.end() ? "" : it->second;
}

void AccessCounter::Count(const AccessEntry& entry) {
  DeployerMetrics& m = Metrics();
  const std::string service = service_of_(entry.host);
  if (service.empty()) {
    m.ingress_unmatched.Increment();
    return;
  }
  m.app_requests.Add({{"service", service}, {"code", absl::StrCat(entry.status / 100, "xx")}})
      .Increment();
  m.app_request_seconds.Add({{"service", service}}, AppRequestBuckets()).Observe(entry.seconds);
}

void AccessCounter::CountDatagram(absl::string_view datagram) {
  for (absl::string_view line : absl::StrSplit(datagram, '\n', absl::SkipWhitespace())) {
    if (auto entry = ParseAccessEntry(line); entry.ok()) Count(*entry);
  }
}

absl::StatusOr<std::unique_ptr<AccessLogReceiver>> AccessLogReceiver::Start(
    const std::string& address, AccessCounter& counter) {
  size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  int port = -1;
  if (host.empty() || !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("C2D_INGRESS_LOG_ADDR=", address, " is not host:port"));
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("C2D_INGRESS_LOG_ADDR=", address, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, freeaddrinfo);
  int fd = socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("cannot bind C2D_INGRESS_LOG_ADDR=", address, ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  int bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return std::unique_ptr<AccessLogReceiver>(new AccessLogReceiver(fd, bound_port, counter));
}

AccessLogReceiver::AccessLogReceiver(int fd, int port, AccessCounter& counter)
    : fd_(fd), port_(port), counter_(counter), thread_([this] { Loop(); }) {}

AccessLogReceiver::~AccessLogReceiver() {
  stop_.store(true, std::memory_order_release);
  thread_.join();
  close(fd_);
}

void AccessLogReceiver::Loop() {
  std::vector<char> buf(65536);
  while (!stop_.load(std::memory_order_acquire)) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;  // checks stop_ at least every 200 ms
    ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n > 0) counter_.CountDatagram(absl::string_view(buf.data(), static_cast<size_t>(n)));
  }
}

}  // namespace c2d::deployer
