#pragma once

// The HTTP/1.1 server the gateway's REST API sits on (Boost.Beast over Asio).
//
// Threads: `io_threads` run Asio (accept, parse, write) and never run a
// handler, except ServerOptions::io_handler; a fixed pool of `workers` runs
// handlers, which may block on gRPC or the database. Streams and WebSockets
// cost no thread: their handlers send through a Stream (message.h) and are
// called back (at most `max_streams` open at once).
//
// Per connection, requests are handled one at a time in the order received
// (pipelined requests wait their turn); HTTP/1.1 connections stay open unless
// the client sends "Connection: close", HTTP/1.0 ones close unless it sends
// "Connection: keep-alive". Every request carries an X-Request-Id (the
// client's when it is [A-Za-z0-9._-]{1,128}, else a new "req_…" id): it is in
// req.headers["x-request-id"] before the handler runs, in the log::Scope of
// the handler's thread, and echoed on the response unless the handler set
// one. Malformed requests get 400, oversized headers 431, oversized bodies
// 413, and the connection closes; a handler that throws gets 500.
//
// Metrics: c2d_http_requests_total{method,route,code},
// c2d_http_request_seconds{route} (handler time; route is Request::route, or
// "unmatched"), c2d_http_open_connections, c2d_http_streams.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "libs/httpd/message.h"

namespace c2d::httpd {

struct ServerOptions {
  std::string address = "127.0.0.1:0";  // host:port, host an IP address; port 0 picks a free one
  int io_threads = 2;                   // Asio threads (accept, read, write)
  int workers = 32;                     // fixed pool running handlers (they may block on gRPC/DB)
  int max_streams = 4096;               // open streams and WebSockets; beyond: 503
  // Larger: 413 {"error":{"code":"payload_too_large",…}} as soon as the
  // Content-Length says so (or a chunked body grows beyond it), without
  // reading the body; the connection then closes.
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;  // larger: 431
  // To receive a request's headers, from their first byte (slowloris); also
  // how long a new connection may stay silent.
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};  // to receive a body; also to send a response
  std::chrono::milliseconds idle_timeout{60'000};  // keep-alive connection idle between requests
  // When set, tried first for every well-formed request, on the I/O thread
  // that parsed it: a Response is sent as the handler's would be; nullopt
  // hands the request to the worker pool and the handler. For answers that
  // need nothing but memory (a cache hit), which then cost no thread
  // handoff and no context switch; it must never block, since it holds up
  // every connection of its I/O thread meanwhile.
  std::function<std::optional<Response>(Request&)> io_handler;
};

class Server {
 public:
  // Binds, listens and starts serving; `handler` runs on the worker pool for
  // every well-formed request. Errors: InvalidArgument (bad options),
  // Unavailable (cannot bind).
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options, Handler handler);

  ~Server();  // Shutdown(0)
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound address, e.g. "127.0.0.1:41234".
  const std::string& address() const;
  int port() const;

  // Graceful drain: stops accepting (new connections are refused), closes
  // idle keep-alive connections, lets in-flight requests finish and tells
  // stream handlers to stop (their Stream's OnClose runs), waiting for all
  // that up to `grace`; then closes whatever is left, waits for running
  // handlers to return and for stream handlers to let go of their Streams,
  // and stops the threads. Handlers must therefore return once told (every
  // blocking call they make needs a deadline), and stream handlers drop
  // their Stream. Idempotent; not to be called from a handler.
  void Shutdown(std::chrono::milliseconds grace);

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace c2d::httpd
