#pragma once

// The request and response types of c2d's HTTP server (libs/httpd/server.h)
// and its router (libs/httpd/router.h): plain values a handler reads and
// fills, with no tie to the transport.

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace c2d::httpd {

struct Request {
  std::string method;  // "GET", … as received (methods are case-sensitive)
  std::string target;  // as received, e.g. "/v1/projects?limit=10"
  std::string path;    // percent-decoded, without the query
  std::multimap<std::string, std::string> query;  // decoded ('+' is a space)
  // Names in lower case; repeated headers joined with ", ". Always holds
  // "x-request-id" (see Server).
  std::map<std::string, std::string> headers;
  std::string body;
  std::string remote_addr;  // "ip:port" of the peer
  // Captures of the matched route pattern, e.g. {"id": "prj_…"}.
  std::map<std::string, std::string> params;
  // The matched route pattern ("/v1/projects/{id}"), set by Router::Dispatch;
  // empty when no route matched. Metrics use it as their route label, so it
  // never holds anything the client chose.
  std::string route;

  std::string Header(absl::string_view name) const;  // "" when absent; name in any case
  std::string Query(absl::string_view name) const;   // first value or ""
};

// Writes a long response (Server-Sent Events, logs) piece by piece. Use it
// from the stream handler's thread only.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // Sends one chunk now (chunked transfer encoding) and waits until the
  // kernel took it (at most about 10 s, after which the client counts as
  // gone). False once the client has gone or the server is shutting down:
  // the handler must then return. An empty chunk sends nothing.
  virtual bool Write(absl::string_view chunk) = 0;
  // True once Write would fail; turns true within moments of the client
  // disconnecting, so a handler waiting for events should poll it (e.g. every
  // second) even when it has nothing to write.
  virtual bool Closed() const = 0;
};

// The server side of one upgraded WebSocket connection, text messages only.
// Messages the client sends are read (so pings and the close handshake
// work) and dropped. Use it from the WebSocket handler's thread only.
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Sends one text message and waits until it was written (at most about
  // 10 s); false once closed.
  virtual bool Send(absl::string_view text) = 0;
  // True once the client closed or went away, or the server is shutting down.
  virtual bool Closed() const = 0;
};

struct Response {
  int status = 200;
  // Sent as given, except Content-Length, Transfer-Encoding and Connection,
  // which the server sets itself.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, the server sends status + headers, then runs stream(writer) on
  // a thread of its own (not the worker pool: streams are long) and ends the
  // response when it returns. body is ignored.
  std::function<void(StreamWriter&)> stream;
  // When set and the request asked for a WebSocket upgrade, the server
  // completes the handshake and runs this on a thread of its own instead of
  // sending the response; the connection closes (normal closure) when it
  // returns. Without an upgrade request, the rest of the response is sent.
  std::function<void(WebSocket&)> websocket;
};

using Handler = std::function<Response(Request&)>;

// A JSON error response: {"error":{"code":code,"message":message}}.
Response JsonError(int status, absl::string_view code, absl::string_view message);

// Decodes %XX escapes (and '+' as a space when plus_is_space); a malformed
// escape stays as it is.
std::string PercentDecode(absl::string_view text, bool plus_is_space);

// Splits a request target into the decoded path and query parameters.
void ParseTarget(absl::string_view target, std::string* path,
                 std::multimap<std::string, std::string>* query);

}  // namespace c2d::httpd
