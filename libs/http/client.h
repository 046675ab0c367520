#pragma once

// HTTP/1.1 client calls over libcurl, for every external HTTP API c2d talks
// to (container engine, registry, Caddy, PowerDNS, OpenStack, ACME). Each call
// has a total deadline and a connect deadline, can be cancelled from another
// thread, and can stream the request body and the response body.
// Thread-safe: each Send uses its own curl handle.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::http {

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, the request body comes from here instead of `body`, read as it
  // is sent (Content-Length `body_size`): the reader fills up to n bytes of
  // buf and returns how many (0 only at the end), or an error, which aborts
  // the exchange with that error.
  std::function<absl::StatusOr<size_t>(char* buf, size_t n)> body_reader;
  int64_t body_size = 0;
  // Connect through this unix socket instead of TCP (the URL's host is then
  // only the Host header), e.g. a container engine's API socket.
  std::string unix_socket;
  std::chrono::milliseconds timeout{30'000};  // whole exchange; 0 = none (needs `cancel`)
  std::chrono::milliseconds connect_timeout{5'000};
  // When set, the response body is handed over in chunks as it arrives
  // instead of being kept in Response::body; returning false aborts the
  // transfer (Send then answers Cancelled).
  std::function<bool(absl::string_view chunk)> on_body;
  // Polled about every 100 ms; true aborts the transfer (Cancelled).
  const std::atomic<bool>* cancel = nullptr;
  // Basic auth credentials, when user is non-empty.
  std::string user;
  std::string password;
  // When set, a PEM bundle of the CAs trusted for https instead of the
  // system store (e.g. the test CA of a Pebble ACME server).
  std::string ca_file;
  // The same from memory (wins over ca_file).
  std::string ca_pem;
  // A client certificate (PEM, leaf first) and its key (PEM) for mutual TLS.
  std::string client_cert_pem;
  std::string client_key_pem;
  // Addresses fixed for names, as curl's "host:port:address" (the URL keeps
  // the name the server's certificate is checked against).
  std::vector<std::string> resolve;
};

struct Response {
  long status = 0;
  // Header names in lower case; repeated headers keep every value.
  std::multimap<std::string, std::string> headers;
  std::string body;  // empty when Request::on_body consumed it

  // The first value of a header (name in any case), or "".
  std::string Header(absl::string_view name) const;
};

// Performs the exchange. An HTTP error status is not an error here: callers
// judge Response::status. Errors: Unavailable (cannot connect, connection
// lost), DeadlineExceeded (timeout), Cancelled (cancel or on_body said stop),
// InvalidArgument (malformed URL). Messages name the method and URL.
absl::StatusOr<Response> Send(const Request& request);

// Splits a byte stream into lines (without "\n" or "\r\n") for on_body
// callbacks; a final unterminated line is delivered by Finish().
class LineSplitter {
 public:
  explicit LineSplitter(std::function<bool(absl::string_view line)> on_line)
      : on_line_(std::move(on_line)) {}
  bool Feed(absl::string_view chunk);
  bool Finish();

 private:
  std::function<bool(absl::string_view)> on_line_;
  std::string pending_;
};

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string UrlEncode(absl::string_view text);

// Standard base64 (RFC 4648 §4) and its URL-safe variant (§5, no padding
// stripped).
std::string Base64(absl::string_view data);
std::string Base64Url(absl::string_view data);

}  // namespace c2d::http
