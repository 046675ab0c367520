#pragma once

// What the libs/httpd tests share: a server on loopback, a raw socket
// client for requests libcurl would not send, and small helpers. Every wait
// has a generous deadline; nothing asserts speed.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/httpd/server.h"
#include "nlohmann/json.hpp"
#include "tests/support/pg_fixture.h"

namespace c2d::httpd_test {

using namespace std::chrono_literals;
using httpd::Request;
using httpd::Response;

inline std::unique_ptr<httpd::Server> StartServer(httpd::Handler handler,
                                                  httpd::ServerOptions options = {}) {
  options.workers = 4;
  auto server = httpd::Server::Start(std::move(options), std::move(handler));
  REQUIRE(server.ok());
  return std::move(*server);
}

inline std::string Url(const httpd::Server& server, absl::string_view path) {
  return absl::StrCat("http://", server.address(), path);
}

inline Response Text(std::string body, int status = 200) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain");
  r.body = std::move(body);
  return r;
}

// Waits up to 10 s for `flag`.
inline bool WaitFlag(const std::atomic<bool>& flag) {
  return testing::WaitFor(10s, [&] { return flag.load(); });
}

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// A blocking HTTP/1.1 client over a plain socket, for requests libcurl
// would not send; every read has a deadline.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { Close(); }

  bool connected() const { return connected_; }

  void Send(absl::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  // The status line and headers of the next response.
  std::optional<RawResponse> ReadHead() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    RawResponse r;
    std::vector<std::string> lines = absl::StrSplit(buf_.substr(0, end), "\r\n");
    std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
    if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &r.status)) return std::nullopt;
    for (size_t i = 1; i < lines.size(); ++i) {
      std::pair<std::string, std::string> kv = absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
      r.headers[absl::AsciiStrToLower(kv.first)] =
          std::string(absl::StripAsciiWhitespace(kv.second));
    }
    buf_.erase(0, end + 4);
    return r;
  }

  // One chunk of a chunked body; "" at the last chunk, nullopt on failure.
  std::optional<std::string> ReadChunk() {
    size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    size_t size = 0;
    if (!absl::SimpleHexAtoi(buf_.substr(0, eol), &size)) return std::nullopt;
    while (buf_.size() < eol + 2 + size + 2) {
      if (!Fill()) return std::nullopt;
    }
    std::string chunk = buf_.substr(eol + 2, size);
    buf_.erase(0, eol + 2 + size + 2);
    return chunk;
  }

  // A whole response (Content-Length or chunked).
  std::optional<RawResponse> Read() {
    std::optional<RawResponse> r = ReadHead();
    if (!r) return r;
    if (r->headers["transfer-encoding"] == "chunked") {
      for (;;) {
        std::optional<std::string> chunk = ReadChunk();
        if (!chunk) return std::nullopt;
        if (chunk->empty()) break;
        r->body += *chunk;
      }
      return r;
    }
    size_t length = 0;
    if (!absl::SimpleAtoi(r->headers["content-length"], &length)) return r;
    while (buf_.size() < length) {
      if (!Fill()) return std::nullopt;
    }
    r->body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }

  // True when the server closes the connection within 10 s (what it sends
  // before is dropped).
  bool WaitClosed() {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!Fill()) return !timed_out_;
      buf_.clear();
    }
    return false;
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  // Appends what arrives within 10 s; false on EOF, error or timeout.
  bool Fill() {
    timed_out_ = false;
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, 10'000);
    if (ready == 0) timed_out_ = true;
    if (ready <= 0) return false;
    char data[16384];
    ssize_t n = ::recv(fd_, data, sizeof(data), 0);
    if (n <= 0) return false;
    buf_.append(data, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool timed_out_ = false;
  std::string buf_;
};

inline nlohmann::json ErrorBody(const std::string& body) {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

}  // namespace c2d::httpd_test
