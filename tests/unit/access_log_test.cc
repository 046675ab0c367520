// The ingress's access log as per-app metrics: parsing Caddy's entries,
// counting them by service, and receiving them over UDP.

#include "services/deployer/access_log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "services/deployer/metrics.h"

namespace c2d::deployer {
namespace {

// A Caddy 2.6 access-log line, as its JSON encoder writes it.
std::string Line(const std::string& host, int status, double duration) {
  return R"({"level":"info","ts":1796276586.03,"logger":"http.log.access.c2d_access",)"
         R"("msg":"handled request","request":{"remote_ip":"127.0.0.1","proto":"HTTP/1.1",)"
         R"("method":"GET","host":")" +
         host + R"(","uri":"/"},"duration":)" + std::to_string(duration) +
         R"(,"size":2,"status":)" + std::to_string(status) + "}";
}

double Requests(const std::string& service, const std::string& code) {
  return Metrics().app_requests.Add({{"service", service}, {"code", code}}).Value();
}

uint64_t Observations(const std::string& service) {
  return Metrics()
      .app_request_seconds.Add({{"service", service}}, AppRequestBuckets())
      .Collect()
      .histogram.sample_count;
}

TEST_CASE("an access-log entry yields its host without port or case and its status and duration",
          "[access_log]") {
  auto e = ParseAccessEntry(Line("Hello.Demo.LOCALHOST:7080", 503, 0.25));
  REQUIRE(e.ok());
  CHECK(e->host == "hello.demo.localhost");
  CHECK(e->status == 503);
  CHECK(e->seconds == Approx(0.25));
  CHECK(ParseAccessEntry(Line("[::1]:8080", 200, 0.1))->host == "[::1]");
  CHECK(ParseAccessEntry(Line("app.example.com.", 200, 0.1))->host == "app.example.com");
}

TEST_CASE("lines that are not access-log entries are refused", "[access_log]") {
  CHECK_FALSE(ParseAccessEntry("not json").ok());
  CHECK_FALSE(ParseAccessEntry(R"({"msg":"handled request"})").ok());
  CHECK_FALSE(ParseAccessEntry(R"({"request":{"host":7},"status":200,"duration":1})").ok());
  CHECK_FALSE(ParseAccessEntry(R"({"request":{"host":"a"},"status":"200","duration":1})").ok());
  CHECK_FALSE(ParseAccessEntry(Line("a.localhost", 99, 0.1)).ok());
  CHECK_FALSE(ParseAccessEntry(Line("a.localhost", 200, -1)).ok());
  CHECK_FALSE(ParseAccessEntry(Line("", 200, 0.1)).ok());
}

TEST_CASE("entries count under their host's service by status class and other hosts apart",
          "[access_log]") {
  AccessCounter counter(
      [](const std::string& host) { return host == "one.p.localhost" ? "svc_count_one" : ""; });
  const double unmatched = Metrics().ingress_unmatched.Value();
  counter.CountDatagram(Line("one.p.localhost:80", 200, 0.01) + "\n" +
                        Line("one.p.localhost", 201, 0.02) + "\n" + "garbage\n" +
                        Line("one.p.localhost", 502, 3.0));
  counter.Count(*ParseAccessEntry(Line("nobody.p.localhost", 404, 0.001)));
  CHECK(Requests("svc_count_one", "2xx") == 2);
  CHECK(Requests("svc_count_one", "5xx") == 1);
  CHECK(Requests("svc_count_one", "4xx") == 0);
  CHECK(Observations("svc_count_one") == 3);
  CHECK(Metrics().ingress_unmatched.Value() == unmatched + 1);
}

TEST_CASE("the receiver counts the datagrams sent to its UDP port", "[access_log]") {
  AccessCounter counter(
      [](const std::string& host) { return host == "udp.p.localhost" ? "svc_count_udp" : ""; });
  auto receiver = AccessLogReceiver::Start("127.0.0.1:0", counter);
  REQUIRE(receiver.ok());
  REQUIRE((*receiver)->port() > 0);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>((*receiver)->port()));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 5; ++i) {
    std::string d = Line("udp.p.localhost", 200, 0.05);
    REQUIRE(sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
            static_cast<ssize_t>(d.size()));
  }
  close(fd);
  for (int i = 0; i < 500 && Requests("svc_count_udp", "2xx") < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(Requests("svc_count_udp", "2xx") == 5);
}

TEST_CASE("a receiver address that is not host:port is refused with the variable named",
          "[access_log]") {
  AccessCounter counter([](const std::string&) { return std::string(); });
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", "nohost:80"}) {
    auto r = AccessLogReceiver::Start(bad, counter);
    CHECK_FALSE(r.ok());
    CHECK(r.status().message().find("C2D_INGRESS_LOG_ADDR") != std::string::npos);
  }
}

}  // namespace
}  // namespace c2d::deployer
