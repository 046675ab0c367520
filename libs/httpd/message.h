#pragma once

// The request and response types of c2d's HTTP server (libs/httpd/server.h)
// and its router (libs/httpd/router.h): plain values a handler reads and
// fills, with no tie to the transport.

#include <functional>
#include <map>
#include <memory>
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

// The server's end of a long response: a chunked body (Server-Sent Events,
// logs) or an upgraded WebSocket (one text message per Send). It costs no
// thread: the handler sends from whatever thread it is on and hears of each
// send by callback, so thousands can be open at once. The response ends
// with End, or when the last reference to the Stream is dropped.
class Stream {
 public:
  using Done = std::function<void(bool ok)>;
  virtual ~Stream() = default;
  // Sends one chunk. `done(ok)` runs once the kernel took it, or with false
  // when the client has gone, the write took longer than 10 s, the stream
  // ended or the server is shutting down. It runs on one of the server's I/O
  // threads, never inside Send, and must not block. One send at a time: a
  // Send before the previous one's `done` fails. An empty chunk sends
  // nothing (done(true)).
  virtual void Send(std::string data, Done done) = 0;
  // Runs `fn` once, on an I/O thread, when the client goes away or the
  // server shuts down (at once when that happened already); never after End.
  // The handler must then stop and drop its references to the Stream. A
  // later call replaces `fn`.
  virtual void OnClose(std::function<void()> fn) = 0;
  // Ends the response once the send in flight is done (the last chunk; a
  // WebSocket's normal closure). Idempotent.
  virtual void End() = 0;
  // True once sends fail.
  virtual bool Closed() const = 0;
};

struct Response {
  int status = 200;
  // Sent as given, except Content-Length, Transfer-Encoding and Connection,
  // which the server sets itself.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, the server sends status + headers, then calls stream(stream)
  // on an I/O thread: it must not block, only start what will Send (an
  // asynchronous call, a timer). body is ignored.
  std::function<void(std::shared_ptr<Stream>)> stream;
  // When set and the request asked for a WebSocket upgrade, the server
  // completes the handshake and calls this (as `stream`) instead of sending
  // the response; the connection closes (normal closure) when the stream
  // ends. Messages the client sends are read (so pings and the close
  // handshake work) and dropped. Without an upgrade request, the rest of the
  // response is sent.
  std::function<void(std::shared_ptr<Stream>)> websocket;
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
