#include "services/deployer/health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace c2d {
namespace {

using deployer::Health;

v1::HealthCheck Check(int healthy, int unhealthy, int start_period_s) {
  v1::HealthCheck c;
  c.set_path("/health");
  c.set_interval_s(10);
  c.set_timeout_s(2);
  c.set_healthy_threshold(healthy);
  c.set_unhealthy_threshold(unhealthy);
  c.set_start_period_s(start_period_s);
  return c;
}

TEST_CASE("failures in the start period do not count and thresholds decide", "[health]") {
  const absl::Time t0 = absl::FromUnixSeconds(1'000'000);
  deployer::HealthTracker h(Check(2, 3, 30), t0);
  // Booting: failures inside the start period leave it Starting.
  for (int i = 0; i < 5; ++i)
    CHECK(h.Record(false, t0 + absl::Seconds(5 * i)) == Health::kStarting);
  CHECK(h.Record(true, t0 + absl::Seconds(25)) == Health::kStarting);  // 1 of 2 passes
  CHECK(h.Record(true, t0 + absl::Seconds(27)) == Health::kHealthy);
  // Two failures are tolerated, the third in a row is not.
  CHECK(h.Record(false, t0 + absl::Seconds(40)) == Health::kHealthy);
  CHECK(h.Record(false, t0 + absl::Seconds(50)) == Health::kHealthy);
  CHECK(h.Record(true, t0 + absl::Seconds(60)) == Health::kHealthy);  // resets the count
  CHECK(h.Record(false, t0 + absl::Seconds(70)) == Health::kHealthy);
  CHECK(h.Record(false, t0 + absl::Seconds(80)) == Health::kHealthy);
  CHECK(h.Record(false, t0 + absl::Seconds(90)) == Health::kUnhealthy);
  // Recovery takes healthy_threshold passes in a row.
  CHECK(h.Record(true, t0 + absl::Seconds(100)) == Health::kUnhealthy);
  CHECK(h.Record(true, t0 + absl::Seconds(110)) == Health::kHealthy);
}

TEST_CASE("an instance that never passes fails once the start period is over", "[health]") {
  const absl::Time t0 = absl::FromUnixSeconds(1'000'000);
  deployer::HealthTracker h(Check(1, 3, 30), t0);
  CHECK(h.Record(false, t0 + absl::Seconds(29)) == Health::kStarting);
  CHECK(h.Record(false, t0 + absl::Seconds(30)) == Health::kStarting);
  CHECK(h.Record(false, t0 + absl::Seconds(40)) == Health::kStarting);
  CHECK(h.Record(false, t0 + absl::Seconds(50)) == Health::kUnhealthy);
  // The deploy gate waits start period + unhealthy_threshold intervals.
  CHECK(deployer::GateDeadline(Check(1, 3, 30)) == absl::Seconds(60));
}

// A loopback HTTP server answering every connection with `status_line`,
// after `delay`.
class TinyServer {
 public:
  TinyServer(std::string status_line, absl::Duration delay = absl::ZeroDuration())
      : status_line_(std::move(status_line)), delay_(delay) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0 || stop_) break;
        char buf[1024];
        (void)read(c, buf, sizeof buf);
        absl::SleepFor(delay_);
        std::string answer = absl::StrCat(status_line_, "\r\nContent-Length: 0\r\n\r\n");
        (void)write(c, answer.data(), answer.size());
        close(c);
      }
    });
  }
  ~TinyServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  std::string status_line_;
  absl::Duration delay_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_CASE("HTTP probes pass on 2xx and 3xx only and TCP probes on a connect", "[health]") {
  v1::HealthCheck http = Check(1, 3, 0);
  {
    TinyServer ok("HTTP/1.1 204 No Content");
    auto r = deployer::Probe(ok.address(), http);
    CHECK(r.ok);
    CHECK(r.detail == "HTTP 204");
  }
  {
    TinyServer moved("HTTP/1.1 302 Found");
    CHECK(deployer::Probe(moved.address(), http).ok);
  }
  {
    TinyServer broken("HTTP/1.1 503 Service Unavailable");
    auto r = deployer::Probe(broken.address(), http);
    CHECK_FALSE(r.ok);
    CHECK(r.detail == "HTTP 503");
  }
  v1::HealthCheck tcp = http;
  tcp.set_path("");
  std::string closed;
  {
    TinyServer listening("HTTP/1.1 500 Whatever");
    closed = listening.address();
    auto r = deployer::Probe(listening.address(), tcp);
    CHECK(r.ok);  // a TCP check does not look at the answer
  }
  CHECK_FALSE(deployer::Probe(closed, tcp).ok);
  CHECK_FALSE(deployer::Probe(closed, http).ok);
}

TEST_CASE("a probe slower than timeout_s fails", "[health]") {
  TinyServer slow("HTTP/1.1 200 OK", absl::Milliseconds(2500));
  v1::HealthCheck c = Check(1, 3, 0);
  c.set_timeout_s(1);
  auto r = deployer::Probe(slow.address(), c);
  CHECK_FALSE(r.ok);
  CHECK(r.detail.find("timed out") != std::string::npos);
  CHECK(r.latency < absl::Seconds(2));
}

}  // namespace
}  // namespace c2d
