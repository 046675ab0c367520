// HTTP connections: reading requests, handing them to the worker pool,
// writing responses and streams, lingering after errors. See
// server_internal.h for how the pieces fit.

#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/websocket.hpp>
#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/httpd/server_internal.h"

namespace c2d::httpd::internal {
namespace {

namespace websocket = beast::websocket;

// How long one stream chunk or WebSocket message may take to reach the
// kernel before the client counts as gone.
constexpr std::chrono::seconds kStreamWriteTimeout{10};
// Bytes of pipelined requests buffered while a stream runs; beyond that the
// connection stops reading (and so stops noticing a disconnect) until the
// stream ends.
constexpr size_t kMaxBufferedWhileStreaming = 64 << 10;
constexpr size_t kReadChunk = 8 << 10;
// A buffer grown by a large body is given back once the connection is idle.
constexpr size_t kIdleBufferCapacity = 64 << 10;
// Closing a connection after an error response: what the client still sends
// is read and dropped for this long (or this much), so that the kernel does
// not answer it with a reset that could destroy the response in flight.
constexpr std::chrono::seconds kLingerTimeout{2};
constexpr size_t kLingerBytes = 1 << 20;

// --- response formatting ---

// Beast's string_view is Boost's; the rest of c2d speaks Abseil's.
absl::string_view View(beast::string_view s) { return absl::string_view(s.data(), s.size()); }

bool ValidRequestId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// A header the handler set that would break the framing (CR, LF, NUL, or a
// name that is not a token) is dropped rather than sent.
bool ValidHeader(absl::string_view name, absl::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c <= ' ' || c >= 127 || c == ':') return false;
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

enum class Framing { kLength, kChunked, kUntilClose };

// The status line and headers of `r`, ending with the blank line.
std::string FormatHead(const Response& r, const std::string& request_id, bool keep_alive,
                       bool http10, Framing framing, size_t length) {
  std::string out;
  out.reserve(160 + r.headers.size() * 48);
  http::status status = http::int_to_status(static_cast<unsigned>(r.status));
  absl::StrAppend(&out, "HTTP/1.1 ", r.status, " ",
                  status == http::status::unknown ? absl::string_view("Unknown")
                                                  : View(http::obsolete_reason(status)),
                  "\r\n");
  bool has_id = false;
  for (const auto& [name, value] : r.headers) {
    if (absl::EqualsIgnoreCase(name, "content-length") ||
        absl::EqualsIgnoreCase(name, "transfer-encoding") ||
        absl::EqualsIgnoreCase(name, "connection")) {
      continue;
    }
    if (!ValidHeader(name, value)) {
      log::Warn("http handler set an invalid header; dropped", {{"header", name}});
      continue;
    }
    if (absl::EqualsIgnoreCase(name, "x-request-id")) has_id = true;
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  if (!has_id) absl::StrAppend(&out, "X-Request-Id: ", request_id, "\r\n");
  switch (framing) {
    case Framing::kLength:
      // 204 and 304 never carry a body nor, for 204, a length.
      if (r.status != 204 && r.status != 304)
        absl::StrAppend(&out, "Content-Length: ", length, "\r\n");
      break;
    case Framing::kChunked:
      out += "Transfer-Encoding: chunked\r\n";
      break;
    case Framing::kUntilClose:
      break;
  }
  if (!keep_alive) {
    out += "Connection: close\r\n";
  } else if (http10) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  return out;
}

}  // namespace

// One HTTP connection. Requests are read, handled on the worker pool and
// answered one at a time; a stream response keeps a read pending (the
// "monitor") to notice the client leaving while the handler sends. Everything
// but Handle and the Stream* entry points runs on the strand.
class Connection : public Session, public StreamTarget {
 public:
  Connection(Server::Impl* server, tcp::socket socket)
      : Session(server), executor_(socket.get_executor()), stream_(std::move(socket)) {
    beast::error_code ec;
    tcp::endpoint peer = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_addr_ = EndpointText(peer);
  }

  void Start() {
    bool stopping = server_->Register(shared_from_this());
    net::post(executor_, [self = Self(), stopping] {
      if (stopping) {
        self->Close();
      } else {
        self->WaitForRequest();
      }
    });
  }

  void Stop(bool force) override {
    net::post(executor_, [self = Self(), force] {
      self->stopping_ = true;
      self->MarkStreamClosed();
      if (self->upgraded_) return;
      // A lingering connection has its response written and closes soon.
      if (force || self->state_ == State::kIdle) {
        self->Close();
      }
    });
  }

  // On a worker thread: runs the handler and hands the response back to the strand.
  void Handle(HttpRequest msg);

  // StreamTarget, from any thread.
  void StreamSend(uint64_t id, std::string data, Stream::Done done) override {
    net::post(executor_,
              [self = Self(), id, data = std::move(data), done = std::move(done)]() mutable {
                self->SendChunk(id, std::move(data), std::move(done));
              });
  }
  void StreamOnClose(uint64_t id, std::function<void()> fn) override {
    net::post(executor_, [self = Self(), id, fn = std::move(fn)]() mutable {
      if (id != self->stream_id_ || self->end_requested_) return;
      if (self->stream_closed_ || self->state_ != State::kStreaming) {
        fn();
      } else {
        self->on_close_ = std::move(fn);
      }
    });
  }
  void StreamEnd(uint64_t id) override {
    net::post(executor_, [self = Self(), id] {
      if (id != self->stream_id_ || self->end_requested_) return;
      self->end_requested_ = true;
      self->on_close_ = nullptr;
      if (self->state_ == State::kStreaming && !self->sending_) self->OnStreamDone();
    });
  }
  bool StreamClosed(uint64_t id) const override {
    return id != stream_id_.load() || stream_closed_.load() || server_->stopping();
  }

 private:
  enum class State { kIdle, kReading, kHandling, kWriting, kStreaming, kLingering, kClosed };

  std::shared_ptr<Connection> Self() {
    return std::static_pointer_cast<Connection>(shared_from_this());
  }
  const ServerOptions& options() const { return server_->options(); }

  void WaitForRequest();
  void ReadHeader();
  void OnHeader(beast::error_code ec);
  void ReadBody();
  void OnReadError(beast::error_code ec);
  void Dispatch();
  Request MakeRequest(HttpRequest& msg, bool take_body) const;
  // On the strand: runs options().io_handler; false when it declined (msg
  // is left for the workers).
  bool HandleOnStrand(HttpRequest& msg);
  // The handler's response, on the thread that ran it: sent (through the
  // strand) as a plain response, a stream or a WebSocket.
  void Answer(HttpRequest msg, const Request& req, Response resp, const std::string& request_id,
              std::chrono::steady_clock::time_point start);
  void SendErrorAndClose(int status, absl::string_view code, absl::string_view message);
  void WriteResponse(std::string head, std::string body, bool close);
  void StartStream(std::string head, std::function<void(std::shared_ptr<Stream>)> fn, bool chunked,
                   bool keep_alive, std::string request_id);
  void SendChunk(uint64_t id, std::string data, Stream::Done done);
  // The stream's client is gone or the server stops: Send fails from now
  // on, and the handler hears of it.
  void MarkStreamClosed();
  void StartMonitor();
  void OnMonitorRead(beast::error_code ec, size_t n);
  void OnStreamDone();
  void FinishStream(bool keep);
  void StartWebSocket(HttpRequest msg, std::function<void(std::shared_ptr<Stream>)> fn,
                      std::string request_id);
  void Linger();
  void Drain();
  void Close();

  const net::any_io_executor executor_;  // the connection's strand
  std::string remote_addr_;              // immutable after construction

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_head_;
  std::string out_body_;
  State state_ = State::kIdle;
  int served_ = 0;
  bool stopping_ = false;
  bool upgraded_ = false;
  size_t lingered_ = 0;

  // Streaming, on the strand.
  bool chunked_ = false;
  bool stream_keep_alive_ = false;
  bool sending_ = false;          // a chunk is being written
  bool end_requested_ = false;    // the handler ended the stream (or let go of it)
  bool stream_done_ = false;      // the last chunk is written or the stream abandoned
  bool monitor_pending_ = false;  // the monitor read is outstanding
  bool client_gone_ = false;      // a read or write failed while streaming
  bool keep_after_stream_ = false;
  std::string out_chunk_;
  std::function<void()> on_close_;
  // Read on any thread by StreamClosed: the stream now or last served, and
  // whether sends fail.
  std::atomic<uint64_t> stream_id_{0};
  std::atomic<bool> stream_closed_{false};
};

void Connection::WaitForRequest() {
  if (stopping_) {
    Linger();
    return;
  }
  if (buffer_.size() > 0) {  // pipelined
    ReadHeader();
    return;
  }
  if (buffer_.capacity() > kIdleBufferCapacity) buffer_.shrink_to_fit();
  // Waiting for the first byte uses the idle timeout (the header timeout on a
  // new connection); from the first byte on, the header timeout runs.
  state_ = State::kIdle;
  stream_.expires_after(served_ == 0 ? options().header_timeout : options().idle_timeout);
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = Self()](beast::error_code ec, size_t n) {
                            if (ec) {
                              self->Close();
                              return;
                            }
                            self->buffer_.commit(n);
                            self->ReadHeader();
                          });
}

void Connection::ReadHeader() {
  if (state_ == State::kClosed) return;
  state_ = State::kReading;
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(options().max_header_bytes));
  parser_->body_limit(options().max_body_bytes);
  stream_.expires_after(options().header_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = Self()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

void Connection::OnHeader(beast::error_code ec) {
  if (ec) {
    OnReadError(ec);
    return;
  }
  if (parser_->is_done()) {
    Dispatch();
    return;
  }
  // A client that waits for "100 Continue" before sending its body would
  // otherwise stall for a while (curl waits a second).
  if (absl::EqualsIgnoreCase(View(parser_->get()[http::field::expect]), "100-continue")) {
    out_head_ = "HTTP/1.1 100 Continue\r\n\r\n";
    stream_.expires_after(options().body_timeout);
    net::async_write(stream_, net::buffer(out_head_),
                     [self = Self()](beast::error_code ec, size_t) {
                       if (ec) {
                         self->Close();
                         return;
                       }
                       self->ReadBody();
                     });
    return;
  }
  ReadBody();
}

void Connection::ReadBody() {
  stream_.expires_after(options().body_timeout);
  http::async_read(stream_, buffer_, *parser_, [self = Self()](beast::error_code ec, size_t) {
    if (ec) {
      self->OnReadError(ec);
      return;
    }
    self->Dispatch();
  });
}

void Connection::OnReadError(beast::error_code ec) {
  if (ec == http::error::header_limit) {
    SendErrorAndClose(
        431, "headers_too_large",
        absl::StrCat("request headers exceed ", options().max_header_bytes, " bytes"));
  } else if (ec == http::error::body_limit) {
    SendErrorAndClose(413, "payload_too_large",
                      absl::StrCat("request body exceeds ", options().max_body_bytes, " bytes"));
  } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
             ec != http::error::end_of_stream && ec != http::error::partial_message) {
    SendErrorAndClose(400, "bad_request", "malformed HTTP request");
  } else {
    // The client left (between requests or mid-request), the connection
    // timed out, or it was closed for shutdown: nobody to answer.
    Close();
  }
}

void Connection::SendErrorAndClose(int status, absl::string_view code, absl::string_view message) {
  Response r = JsonError(status, code, message);
  std::string id;
  absl::string_view method = "OTHER";
  if (parser_.has_value() && parser_->is_header_done()) {
    auto sent = parser_->get()["X-Request-Id"];
    if (ValidRequestId(View(sent))) id = std::string(View(sent));
    method = View(parser_->get().method_string());
  }
  if (id.empty()) id = ids::New("req");
  RecordRequest(method, "", status, 0);
  std::string head =
      FormatHead(r, id, /*keep_alive=*/false, /*http10=*/false, Framing::kLength, r.body.size());
  WriteResponse(std::move(head), std::move(r.body), /*close=*/true);
}

void Connection::Dispatch() {
  const HttpRequest& msg = parser_->get();
  if (msg.version() != 10 && msg.version() != 11) {
    SendErrorAndClose(505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served");
    return;
  }
  if (msg.target().empty() || msg.target().front() != '/') {
    SendErrorAndClose(400, "bad_request", "the request target must be an absolute path");
    return;
  }
  state_ = State::kHandling;
  WorkerPool::Task task{Self(), parser_->release()};
  parser_.reset();
  if (options().io_handler && HandleOnStrand(task.msg)) return;
  if (!server_->workers().Post(task)) Close();  // shutting down
}

namespace {

// Calls fn(req) in the request's log scope; what fn throws becomes a 500.
template <typename R, typename F>
R CallHandler(const F& fn, Request& req, const std::string& request_id) {
  log::Scope scope(nlohmann::json{{"request_id", request_id}});
  try {
    return fn(req);
  } catch (const std::exception& e) {
    log::Error("http handler threw",
               {{"method", req.method}, {"path", req.path}, {"error", e.what()}});
  } catch (...) {
    log::Error("http handler threw", {{"method", req.method}, {"path", req.path}});
  }
  return JsonError(500, "internal", "internal error");
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Request Connection::MakeRequest(HttpRequest& msg, bool take_body) const {
  Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  ParseTarget(req.target, &req.path, &req.query);
  for (const auto& field : msg) {
    std::string name(field.name_string());
    absl::AsciiStrToLower(&name);
    auto [it, inserted] = req.headers.try_emplace(std::move(name), View(field.value()));
    if (!inserted) absl::StrAppend(&it->second, ", ", View(field.value()));
  }
  req.body = take_body ? std::move(msg.body()) : msg.body();
  req.remote_addr = remote_addr_;
  std::string& id_header = req.headers["x-request-id"];
  if (!ValidRequestId(id_header)) id_header = ids::New("req");
  return req;
}

bool Connection::HandleOnStrand(HttpRequest& msg) {
  const auto start = std::chrono::steady_clock::now();
  // The body is copied, not taken: the workers need it when io_handler declines.
  Request req = MakeRequest(msg, /*take_body=*/false);
  const std::string request_id = req.headers["x-request-id"];  // the handler may change req
  auto resp = CallHandler<std::optional<Response>>(options().io_handler, req, request_id);
  if (!resp.has_value()) return false;
  Answer(std::move(msg), req, std::move(*resp), request_id, start);
  return true;
}

void Connection::Handle(HttpRequest msg) {
  const auto start = std::chrono::steady_clock::now();
  Request req = MakeRequest(msg, /*take_body=*/true);
  const std::string request_id = req.headers["x-request-id"];  // the handler may change req
  Response resp = CallHandler<Response>(server_->handler(), req, request_id);
  Answer(std::move(msg), req, std::move(resp), request_id, start);
}

void Connection::Answer(HttpRequest msg, const Request& req, Response resp,
                        const std::string& request_id,
                        std::chrono::steady_clock::time_point start) {
  // net::dispatch: from the strand (io_handler) the response goes out at
  // once; from a worker it is queued on the strand.
  const bool http10 = msg.version() == 10;
  const bool head_only = msg.method() == http::verb::head;
  // After the handler: a shutdown that began meanwhile closes the connection.
  const bool keep_alive = msg.keep_alive() && !server_->stopping();
  if (resp.status < 200 || resp.status > 999) {
    log::Error("http handler returned an invalid status",
               {{"method", req.method}, {"path", req.path}, {"status", resp.status}});
    resp = JsonError(500, "internal", "internal error");
  }

  if (resp.websocket && websocket::is_upgrade(msg)) {
    if (server_->AcquireStream()) {
      RecordRequest(req.method, req.route, 101, SecondsSince(start));
      net::dispatch(executor_, [self = Self(), msg = std::move(msg), fn = std::move(resp.websocket),
                                request_id]() mutable {
        self->StartWebSocket(std::move(msg), std::move(fn), std::move(request_id));
      });
      return;
    }
    resp = JsonError(503, "unavailable", "too many concurrent streams");
  } else if (resp.stream && !head_only) {
    if (server_->AcquireStream()) {
      RecordRequest(req.method, req.route, resp.status, SecondsSince(start));
      // HTTP/1.0 knows no chunks: the body then ends with the connection.
      const bool chunked = !http10;
      std::string head = FormatHead(resp, request_id, keep_alive && chunked, http10,
                                    chunked ? Framing::kChunked : Framing::kUntilClose, 0);
      net::dispatch(executor_, [self = Self(), head = std::move(head), fn = std::move(resp.stream),
                                chunked, keep_alive, request_id]() mutable {
        self->StartStream(std::move(head), std::move(fn), chunked, keep_alive,
                          std::move(request_id));
      });
      return;
    }
    resp = JsonError(503, "unavailable", "too many concurrent streams");
  }

  RecordRequest(req.method, req.route, resp.status, SecondsSince(start));
  std::string head =
      FormatHead(resp, request_id, keep_alive, http10, Framing::kLength, resp.body.size());
  if (head_only || resp.status == 204 || resp.status == 304) resp.body.clear();
  net::dispatch(executor_, [self = Self(), head = std::move(head), body = std::move(resp.body),
                            close = !keep_alive]() mutable {
    self->WriteResponse(std::move(head), std::move(body), close);
  });
}

void Connection::WriteResponse(std::string head, std::string body, bool close) {
  state_ = State::kWriting;
  out_head_ = std::move(head);
  out_body_ = std::move(body);
  std::array<net::const_buffer, 2> buffers{net::buffer(out_head_), net::buffer(out_body_)};
  stream_.expires_after(options().body_timeout);
  net::async_write(stream_, buffers, [self = Self(), close](beast::error_code ec, size_t) {
    self->out_body_.clear();
    if (ec) {
      self->Close();
      return;
    }
    ++self->served_;
    if (close || self->stopping_) {
      self->Linger();
    } else {
      self->WaitForRequest();
    }
  });
}

void Connection::StartStream(std::string head, std::function<void(std::shared_ptr<Stream>)> fn,
                             bool chunked, bool keep_alive, std::string request_id) {
  if (!stream_.socket().is_open()) {
    server_->ReleaseStream();
    Close();
    return;
  }
  state_ = State::kStreaming;
  chunked_ = chunked;
  stream_keep_alive_ = keep_alive && chunked;
  sending_ = end_requested_ = stream_done_ = false;
  client_gone_ = false;
  const uint64_t id = ++stream_id_;
  out_head_ = std::move(head);
  stream_.expires_after(kStreamWriteTimeout);
  net::async_write(stream_, net::buffer(out_head_),
                   [self = Self(), fn = std::move(fn), request_id = std::move(request_id), id](
                       beast::error_code ec, size_t) mutable {
                     if (ec) {
                       self->server_->ReleaseStream();
                       self->client_gone_ = true;
                       self->stream_done_ = true;
                       self->Close();
                       return;
                     }
                     self->StartMonitor();
                     // The handle owns the slot from here on.
                     StartHandler(fn, std::make_shared<StreamHandle>(self->server_, self, id),
                                  request_id);
                   });
}

void Connection::SendChunk(uint64_t id, std::string data, Stream::Done done) {
  if (id != stream_id_ || state_ != State::kStreaming || stream_closed_ || client_gone_ ||
      end_requested_ || sending_ || !stream_.socket().is_open()) {
    done(false);
    return;
  }
  if (data.empty()) {  // an empty chunk would end the body
    done(true);
    return;
  }
  sending_ = true;
  out_chunk_ =
      chunked_ ? absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n") : std::move(data);
  stream_.expires_after(kStreamWriteTimeout);
  net::async_write(stream_, net::buffer(out_chunk_),
                   [self = Self(), done = std::move(done)](beast::error_code ec, size_t) {
                     self->sending_ = false;
                     if (ec) {
                       self->client_gone_ = true;
                       self->MarkStreamClosed();
                     }
                     done(!ec);
                     if (self->end_requested_ && !self->stream_done_) self->OnStreamDone();
                   });
}

void Connection::MarkStreamClosed() {
  stream_closed_ = true;
  if (on_close_) {
    std::function<void()> fn = std::move(on_close_);
    on_close_ = nullptr;
    fn();
  }
}

void Connection::StartMonitor() {
  monitor_pending_ = true;
  // On the raw socket, not through tcp_stream: no timeout (a stream may be
  // quiet for long), and tcp_stream's write timeouts stay usable meanwhile.
  stream_.socket().async_read_some(
      buffer_.prepare(kReadChunk),
      [self = Self()](beast::error_code ec, size_t n) { self->OnMonitorRead(ec, n); });
}

void Connection::OnMonitorRead(beast::error_code ec, size_t n) {
  monitor_pending_ = false;
  if (!ec) buffer_.commit(n);
  if (state_ != State::kStreaming) {
    // FinishStream cancelled the read (or it completed meanwhile) and waits
    // for it to come back.
    if ((ec && ec != net::error::operation_aborted) || !stream_.socket().is_open()) {
      Close();
    } else if (keep_after_stream_) {
      WaitForRequest();
    } else {
      Linger();
    }
    return;
  }
  if (ec) {
    // EOF or reset: the client left.
    client_gone_ = true;
    MarkStreamClosed();
    return;
  }
  if (buffer_.size() < kMaxBufferedWhileStreaming) StartMonitor();
}

void Connection::OnStreamDone() {
  stream_done_ = true;
  on_close_ = nullptr;
  if (client_gone_ || !stream_.socket().is_open()) {
    FinishStream(false);
    return;
  }
  if (!chunked_) {
    FinishStream(false);  // the end of the body is the end of the connection
    return;
  }
  out_head_ = "0\r\n\r\n";
  stream_.expires_after(kStreamWriteTimeout);
  net::async_write(stream_, net::buffer(out_head_), [self = Self()](beast::error_code ec, size_t) {
    if (!ec) ++self->served_;
    self->FinishStream(!ec && self->stream_keep_alive_ && !self->stopping_);
  });
}

void Connection::FinishStream(bool keep) {
  state_ = keep ? State::kReading : State::kLingering;
  keep_after_stream_ = keep;
  stream_closed_ = false;
  if (client_gone_ || !stream_.socket().is_open()) {
    Close();
    return;
  }
  if (monitor_pending_) {
    // Only the monitor read is outstanding; its handler carries on.
    beast::error_code ec;
    stream_.socket().cancel(ec);
    return;
  }
  if (keep) {
    WaitForRequest();
  } else {
    Linger();
  }
}

void Connection::Linger() {
  state_ = State::kLingering;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    Close();
    return;
  }
  lingered_ = 0;
  buffer_.clear();
  stream_.expires_after(kLingerTimeout);
  Drain();
}

void Connection::Drain() {
  stream_.async_read_some(
      buffer_.prepare(kReadChunk), [self = Self()](beast::error_code ec, size_t n) {
        self->lingered_ += n;
        if (ec || self->lingered_ > kLingerBytes || self->state_ == State::kClosed) {
          self->Close();
          return;
        }
        self->Drain();
      });
}

void Connection::Close() {
  if (upgraded_) return;
  if (state_ == State::kStreaming) MarkStreamClosed();
  state_ = State::kClosed;
  stream_closed_ = true;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

void Connection::StartWebSocket(HttpRequest msg, std::function<void(std::shared_ptr<Stream>)> fn,
                                std::string request_id) {
  if (!stream_.socket().is_open() || stopping_) {
    server_->ReleaseStream();
    Close();
    return;
  }
  // What the client sent after the upgrade request (it should wait for the
  // 101) is dropped with buffer_.
  upgraded_ = true;
  state_ = State::kClosed;
  UpgradeToWebSocket(server_, std::move(stream_), std::move(msg), std::move(fn),
                     std::move(request_id));
}

void WorkerPool::Loop() {
  for (;;) {
    Task task;
    mu_.LockWhen(absl::Condition(this, &WorkerPool::Ready));
    if (stop_) {
      mu_.Unlock();
      return;
    }
    task = std::move(queue_.front());
    queue_.pop_front();
    mu_.Unlock();
    task.conn->Handle(std::move(task.msg));
  }
}

void StartConnection(Server::Impl* server, tcp::socket socket) {
  std::make_shared<Connection>(server, std::move(socket))->Start();
}

}  // namespace c2d::httpd::internal
