#include "libs/httpd/server.h"

#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <exception>
#include <future>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/metrics/metrics.h"

namespace c2d::httpd {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using HttpRequest = http::request<http::string_body>;

// How long one stream chunk or WebSocket message may take to reach the
// kernel before the client counts as gone.
constexpr std::chrono::seconds kStreamWriteTimeout{10};
// The writer thread's own bound on that wait, in case the socket timeout
// cannot fire (it always should first).
constexpr absl::Duration kStreamWaitTimeout = absl::Seconds(15);
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

// --- metrics ---

struct HttpMetrics {
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& seconds;
  prometheus::Gauge& open_connections;
  prometheus::Gauge& streams;
};

HttpMetrics& Metrics() {
  // Shared by every Server in the process, registered once.
  static HttpMetrics* m = [] {
    auto& reg = metrics::Registry();
    return new HttpMetrics{
        prometheus::BuildCounter()
            .Name("c2d_http_requests_total")
            .Help("HTTP requests answered, by method, route pattern and status code")
            .Register(reg),
        prometheus::BuildHistogram()
            .Name("c2d_http_request_seconds")
            .Help("HTTP handler time until the response (or a stream's headers), by route")
            .Register(reg),
        prometheus::BuildGauge()
            .Name("c2d_http_open_connections")
            .Help("Open HTTP and WebSocket connections")
            .Register(reg)
            .Add({}),
        prometheus::BuildGauge()
            .Name("c2d_http_streams")
            .Help("Running stream and WebSocket handlers")
            .Register(reg)
            .Add({}),
    };
  }();
  return *m;
}

const prometheus::Histogram::BucketBoundaries& RequestBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *buckets;
}

// Unknown methods share one label value, so clients cannot grow the series.
const char* MethodLabel(absl::string_view method) {
  for (const char* known : {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}) {
    if (method == known) return known;
  }
  return "OTHER";
}

void RecordRequest(absl::string_view method, const std::string& route, int status, double seconds) {
  static const std::string kUnmatched = "unmatched";
  const std::string& label = route.empty() ? kUnmatched : route;
  HttpMetrics& m = Metrics();
  m.requests
      .Add({{"method", MethodLabel(method)}, {"route", label}, {"code", absl::StrCat(status)}})
      .Increment();
  m.seconds.Add({{"route", label}}, RequestBuckets()).Observe(seconds);
}

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

std::string EndpointText(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return absl::StrCat("[", ep.address().to_string(), "]:", ep.port());
  return absl::StrCat(ep.address().to_string(), ":", ep.port());
}

// One write handed from a stream or WebSocket handler thread to the
// connection's strand; the thread waits for Complete.
struct PendingWrite {
  std::string data;
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  bool ok ABSL_GUARDED_BY(mu) = false;

  void Complete(bool success) {
    absl::MutexLock lock(&mu);
    done = true;
    ok = success;
  }
  // The write's outcome, or nullopt when it did not complete in time.
  std::optional<bool> Wait() {
    absl::MutexLock lock(&mu);
    if (!mu.AwaitWithTimeout(absl::Condition(&done), kStreamWaitTimeout)) return std::nullopt;
    return ok;
  }
};

class Connection;

// The fixed pool running handlers. Each connection has at most one request
// queued or running, so the queue is bounded by the number of connections.
class WorkerPool {
 public:
  struct Task {
    std::shared_ptr<Connection> conn;
    HttpRequest msg;
  };

  void Start(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Loop(); });
  }
  // False once stopped: the task is not taken (the caller closes its connection).
  bool Post(Task& task) {
    absl::MutexLock lock(&mu_);
    if (stop_) return false;
    queue_.push_back(std::move(task));
    return true;
  }
  // Lets running handlers finish, drops queued ones (their connections are
  // closed by then) and joins the threads.
  void Stop() {
    std::deque<Task> dropped;
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      dropped.swap(queue_);
    }
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); }
  void Loop();

  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// The threads of stream and WebSocket handlers: one each, joined when it
// has finished (at the next start) or at shutdown.
class ThreadSet {
 public:
  // False after JoinAll: fn does not run.
  bool Run(std::function<void()> fn) {
    std::vector<std::thread> finished;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return false;
      finished.swap(finished_);
      uint64_t id = next_id_++;
      // Created under the lock, so the thread's Finish finds itself in running_.
      running_.emplace(id, std::thread([this, id, fn = std::move(fn)] {
                         fn();
                         Finish(id);
                       }));
    }
    for (std::thread& t : finished) t.join();
    return true;
  }
  void JoinAll() {
    std::vector<std::thread> all;
    {
      absl::MutexLock lock(&mu_);
      stopped_ = true;
      all.swap(finished_);
      for (auto& [id, t] : running_) all.push_back(std::move(t));
      running_.clear();
    }
    for (std::thread& t : all) t.join();
  }

 private:
  void Finish(uint64_t id) {
    absl::MutexLock lock(&mu_);
    auto it = running_.find(id);
    if (it == running_.end()) return;  // JoinAll took it
    finished_.push_back(std::move(it->second));
    running_.erase(it);
  }

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, std::thread> running_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> finished_ ABSL_GUARDED_BY(mu_);
};

// A connection the server tracks for shutdown: an HTTP connection or, after
// an upgrade, a WebSocket. All its state belongs to its strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(Server::Impl* server) : server_(server) {}
  virtual ~Session();
  // Called on any thread. force=false: finish what is in flight, close when
  // idle, tell stream handlers to stop; force=true: close now.
  virtual void Stop(bool force) = 0;

 protected:
  Server::Impl* const server_;
};

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions options, Handler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        ioc_(std::max(1, options_.io_threads)),
        acceptor_(net::make_strand(ioc_)),
        accept_retry_(acceptor_.get_executor()) {}
  ~Impl() { Shutdown(std::chrono::milliseconds(0)); }

  absl::Status Listen();
  void Run();
  void Shutdown(std::chrono::milliseconds grace);

  const ServerOptions& options() const { return options_; }
  const Handler& handler() const { return handler_; }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  WorkerPool& workers() { return workers_; }
  ThreadSet& stream_threads() { return stream_threads_; }
  const std::string& address() const { return address_; }
  int port() const { return port_; }

  // Tracks a new session; true when the server is already stopping (the
  // caller then closes it: it missed Shutdown's Stop).
  bool Register(const std::shared_ptr<Session>& session);
  void Unregister(Session* session);

  // A slot for a stream or WebSocket handler; false when max_streams run.
  bool AcquireStream() {
    if (active_streams_.fetch_add(1) >= options_.max_streams) {
      active_streams_.fetch_sub(1);
      return false;
    }
    return true;
  }
  void ReleaseStream() { active_streams_.fetch_sub(1); }

 private:
  void Accept();
  void StopSessions(bool force);
  void WaitForSessions(absl::Time deadline);

  const ServerOptions options_;
  const Handler handler_;
  std::string address_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_streams_{0};

  absl::Mutex shutdown_mu_;
  bool started_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;

  absl::Mutex sessions_mu_;
  absl::flat_hash_map<Session*, std::weak_ptr<Session>> sessions_ ABSL_GUARDED_BY(sessions_mu_);

  WorkerPool workers_;
  ThreadSet stream_threads_;
  std::vector<std::thread> io_threads_;

  // Destroyed first, while everything above is alive: destroying the
  // io_context destroys pending handlers and with them the last references
  // to sessions, whose destructors Unregister.
  net::io_context ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  // The acceptor and its retry timer live on one strand, so Shutdown can close
  // the acceptor without racing a completion.
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_;
};

namespace {

Session::~Session() { server_->Unregister(this); }

// One HTTP connection. Requests are read, handled on the worker pool and
// answered one at a time; a stream response keeps a read pending (the
// "monitor") to notice the client leaving while the handler runs on its own
// thread. Everything but Handle and the StreamWriter runs on the strand.
class Connection : public Session {
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
      self->stream_closed_ = true;
      if (self->upgraded_) return;
      // A lingering connection has its response written and closes soon.
      if (force || self->state_ == State::kIdle) {
        self->Close();
      }
    });
  }

  // On a worker thread: runs the handler and hands the response back to the strand.
  void Handle(HttpRequest msg);

 private:
  enum class State { kIdle, kReading, kHandling, kWriting, kStreaming, kLingering, kClosed };

  class Writer;

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
  void SendErrorAndClose(int status, absl::string_view code, absl::string_view message);
  void WriteResponse(std::string head, std::string body, bool close);
  void StartStream(std::string head, std::function<void(StreamWriter&)> fn, bool chunked,
                   bool keep_alive, std::string request_id);
  void StreamWrite(const std::shared_ptr<PendingWrite>& op);
  void StartMonitor();
  void OnMonitorRead(beast::error_code ec, size_t n);
  void OnStreamDone();
  void FinishStream(bool keep);
  void StartWebSocket(HttpRequest msg, std::function<void(WebSocket&)> fn, std::string request_id);
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
  bool chunked_ = false;  // set before the handler thread starts
  bool stream_keep_alive_ = false;
  bool stream_done_ = false;      // the handler returned
  bool monitor_pending_ = false;  // the monitor read is outstanding
  bool client_gone_ = false;      // a read or write failed while streaming
  bool keep_after_stream_ = false;
  // Read by the handler thread: true once Write must fail.
  std::atomic<bool> stream_closed_{false};
};

// The StreamWriter the stream handler gets; it holds the connection alive.
class Connection::Writer : public StreamWriter {
 public:
  explicit Writer(std::shared_ptr<Connection> conn) : conn_(std::move(conn)) {}

  bool Write(absl::string_view chunk) override {
    absl::MutexLock lock(&mu_);  // one write in flight per connection
    if (Closed()) return false;
    if (chunk.empty()) return true;  // an empty chunk would end the body
    auto op = std::make_shared<PendingWrite>();
    op->data = conn_->chunked_ ? absl::StrCat(absl::Hex(chunk.size()), "\r\n", chunk, "\r\n")
                               : std::string(chunk);
    net::post(conn_->executor_, [conn = conn_, op] { conn->StreamWrite(op); });
    std::optional<bool> ok = op->Wait();
    if (!ok.has_value()) {
      conn_->stream_closed_ = true;
      net::post(conn_->executor_, [conn = conn_] {
        conn->client_gone_ = true;
        conn->Close();
      });
      return false;
    }
    return *ok;
  }

  bool Closed() const override {
    return conn_->stream_closed_.load() || conn_->server_->stopping();
  }

 private:
  std::shared_ptr<Connection> conn_;
  absl::Mutex mu_;
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
  if (!server_->workers().Post(task)) Close();  // shutting down
}

void Connection::Handle(HttpRequest msg) {
  const auto start = std::chrono::steady_clock::now();
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
  req.body = std::move(msg.body());
  req.remote_addr = remote_addr_;
  std::string& id_header = req.headers["x-request-id"];
  if (!ValidRequestId(id_header)) id_header = ids::New("req");
  const std::string request_id = id_header;  // the handler may change req

  const bool http10 = msg.version() == 10;
  const bool head_only = msg.method() == http::verb::head;

  Response resp;
  {
    log::Scope scope(nlohmann::json{{"request_id", request_id}});
    try {
      resp = server_->handler()(req);
    } catch (const std::exception& e) {
      log::Error("http handler threw",
                 {{"method", req.method}, {"path", req.path}, {"error", e.what()}});
      resp = JsonError(500, "internal", "internal error");
    } catch (...) {
      log::Error("http handler threw", {{"method", req.method}, {"path", req.path}});
      resp = JsonError(500, "internal", "internal error");
    }
  }
  // After the handler: a shutdown that began meanwhile closes the connection.
  const bool keep_alive = msg.keep_alive() && !server_->stopping();
  if (resp.status < 200 || resp.status > 999) {
    log::Error("http handler returned an invalid status",
               {{"method", req.method}, {"path", req.path}, {"status", resp.status}});
    resp = JsonError(500, "internal", "internal error");
  }

  if (resp.websocket && websocket::is_upgrade(msg)) {
    if (server_->AcquireStream()) {
      RecordRequest(
          req.method, req.route, 101,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      net::post(executor_, [self = Self(), msg = std::move(msg), fn = std::move(resp.websocket),
                            request_id]() mutable {
        self->StartWebSocket(std::move(msg), std::move(fn), std::move(request_id));
      });
      return;
    }
    resp = JsonError(503, "unavailable", "too many concurrent streams");
  } else if (resp.stream && !head_only) {
    if (server_->AcquireStream()) {
      RecordRequest(
          req.method, req.route, resp.status,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      // HTTP/1.0 knows no chunks: the body then ends with the connection.
      const bool chunked = !http10;
      std::string head = FormatHead(resp, request_id, keep_alive && chunked, http10,
                                    chunked ? Framing::kChunked : Framing::kUntilClose, 0);
      net::post(executor_, [self = Self(), head = std::move(head), fn = std::move(resp.stream),
                            chunked, keep_alive, request_id]() mutable {
        self->StartStream(std::move(head), std::move(fn), chunked, keep_alive,
                          std::move(request_id));
      });
      return;
    }
    resp = JsonError(503, "unavailable", "too many concurrent streams");
  }

  RecordRequest(req.method, req.route, resp.status,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  std::string head =
      FormatHead(resp, request_id, keep_alive, http10, Framing::kLength, resp.body.size());
  if (head_only || resp.status == 204 || resp.status == 304) resp.body.clear();
  net::post(executor_, [self = Self(), head = std::move(head), body = std::move(resp.body),
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

void Connection::StartStream(std::string head, std::function<void(StreamWriter&)> fn, bool chunked,
                             bool keep_alive, std::string request_id) {
  if (!stream_.socket().is_open()) {
    server_->ReleaseStream();
    Close();
    return;
  }
  state_ = State::kStreaming;
  chunked_ = chunked;
  stream_keep_alive_ = keep_alive && chunked;
  stream_done_ = false;
  client_gone_ = false;
  out_head_ = std::move(head);
  stream_.expires_after(kStreamWriteTimeout);
  net::async_write(stream_, net::buffer(out_head_),
                   [self = Self(), fn = std::move(fn), request_id = std::move(request_id)](
                       beast::error_code ec, size_t) mutable {
                     if (ec) {
                       self->server_->ReleaseStream();
                       self->Close();
                       return;
                     }
                     self->StartMonitor();
                     Server::Impl* server = self->server_;
                     bool started = server->stream_threads().Run(
                         [self, fn = std::move(fn), request_id = std::move(request_id)] {
                           Metrics().streams.Increment();
                           {
                             Writer writer(self);
                             log::Scope scope(nlohmann::json{{"request_id", request_id}});
                             try {
                               fn(writer);
                             } catch (const std::exception& e) {
                               log::Error("http stream handler threw", {{"error", e.what()}});
                             } catch (...) {
                               log::Error("http stream handler threw");
                             }
                           }
                           Metrics().streams.Decrement();
                           self->server_->ReleaseStream();
                           net::post(self->executor_, [self] { self->OnStreamDone(); });
                         });
                     if (!started) {  // shutting down
                       server->ReleaseStream();
                       self->stream_closed_ = true;
                       self->OnStreamDone();
                     }
                   });
}

void Connection::StreamWrite(const std::shared_ptr<PendingWrite>& op) {
  if (stream_closed_ || client_gone_ || stream_done_ || !stream_.socket().is_open()) {
    op->Complete(false);
    return;
  }
  stream_.expires_after(kStreamWriteTimeout);
  net::async_write(stream_, net::buffer(op->data),
                   [self = Self(), op](beast::error_code ec, size_t) {
                     if (ec) {
                       self->client_gone_ = true;
                       self->stream_closed_ = true;
                     }
                     op->Complete(!ec);
                   });
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
    // EOF or reset: the client left. The handler learns it from Closed().
    client_gone_ = true;
    stream_closed_ = true;
    return;
  }
  if (buffer_.size() < kMaxBufferedWhileStreaming) StartMonitor();
}

void Connection::OnStreamDone() {
  stream_done_ = true;
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
  state_ = State::kClosed;
  stream_closed_ = true;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

// --- WebSocket ---

class WsSession : public Session, public WebSocket {
 public:
  WsSession(Server::Impl* server, beast::tcp_stream stream, std::function<void(WebSocket&)> fn,
            std::string request_id)
      : Session(server),
        executor_(stream.get_executor()),
        ws_(std::move(stream)),
        fn_(std::move(fn)),
        request_id_(std::move(request_id)) {}

  // On the strand, right after the upgrade request was read.
  void Start(HttpRequest msg) {
    if (server_->Register(shared_from_this())) {
      stopping_ = true;
      closed_ = true;
    }
    upgrade_ = std::move(msg);
    beast::get_lowest_layer(ws_).expires_never();  // the websocket's own timeouts apply
    websocket::stream_base::timeout timeout;
    timeout.handshake_timeout = server_->options().header_timeout;
    // Pings at half the idle timeout find a client that vanished silently.
    timeout.idle_timeout = server_->options().idle_timeout;
    timeout.keep_alive_pings = true;
    ws_.set_option(timeout);
    ws_.set_option(websocket::stream_base::decorator(
        [id = request_id_](websocket::response_type& res) { res.set("X-Request-Id", id); }));
    ws_.read_message_max(server_->options().max_body_bytes);
    ws_.async_accept(upgrade_, [self = Self()](beast::error_code ec) { self->OnAccept(ec); });
  }

  void Stop(bool force) override {
    closed_ = true;
    net::post(executor_, [self = Self(), force] {
      self->stopping_ = true;
      if (force) self->CloseSocket();
    });
  }

  bool Send(absl::string_view text) override {
    absl::MutexLock lock(&send_mu_);  // one write in flight
    if (closed_) return false;
    auto op = std::make_shared<PendingWrite>();
    op->data = std::string(text);
    net::post(executor_, [self = Self(), op] {
      if (self->closed_ || self->peer_gone_) {
        op->Complete(false);
        return;
      }
      self->ws_.async_write(net::buffer(op->data), [self, op](beast::error_code ec, size_t) {
        if (ec) self->closed_ = true;
        op->Complete(!ec);
      });
    });
    std::optional<bool> ok = op->Wait();
    if (!ok.has_value()) {
      closed_ = true;
      net::post(executor_, [self = Self()] { self->CloseSocket(); });
      return false;
    }
    return *ok;
  }

  bool Closed() const override { return closed_.load(); }

 private:
  std::shared_ptr<WsSession> Self() {
    return std::static_pointer_cast<WsSession>(shared_from_this());
  }

  void OnAccept(beast::error_code ec) {
    if (ec) {
      server_->ReleaseStream();
      CloseSocket();
      return;
    }
    ws_.text(true);
    Read();
    bool started = server_->stream_threads().Run([self = Self()] {
      Metrics().streams.Increment();
      {
        log::Scope scope(nlohmann::json{{"request_id", self->request_id_}});
        try {
          self->fn_(*self);
        } catch (const std::exception& e) {
          log::Error("websocket handler threw", {{"error", e.what()}});
        } catch (...) {
          log::Error("websocket handler threw");
        }
      }
      Metrics().streams.Decrement();
      self->server_->ReleaseStream();
      net::post(self->executor_, [self] { self->OnHandlerDone(); });
    });
    if (!started) {  // shutting down
      server_->ReleaseStream();
      closed_ = true;
      OnHandlerDone();
    }
  }

  // Reads and drops client messages; the read also answers pings and
  // completes the close handshake.
  void Read() {
    ws_.async_read(buffer_, [self = Self()](beast::error_code ec, size_t) {
      if (ec) {
        self->peer_gone_ = true;
        self->closed_ = true;
        if (ec != websocket::error::closed) self->CloseSocket();
        return;
      }
      self->buffer_.clear();
      self->Read();
    });
  }

  void OnHandlerDone() {
    if (peer_gone_ || !beast::get_lowest_layer(ws_).socket().is_open()) {
      CloseSocket();
      return;
    }
    closed_ = true;
    ws_.async_close(stopping_ ? websocket::close_code::going_away : websocket::close_code::normal,
                    [self = Self()](beast::error_code ec) {
                      // Success: the pending read ends once the client answers.
                      if (ec) self->CloseSocket();
                    });
  }

  void CloseSocket() {
    closed_ = true;
    beast::get_lowest_layer(ws_).close();
  }

  const net::any_io_executor executor_;  // the strand
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  HttpRequest upgrade_;
  const std::function<void(WebSocket&)> fn_;
  const std::string request_id_;
  absl::Mutex send_mu_;
  std::atomic<bool> closed_{false};  // read by the handler thread
  bool peer_gone_ = false;           // strand
  bool stopping_ = false;            // strand
};

void Connection::StartWebSocket(HttpRequest msg, std::function<void(WebSocket&)> fn,
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
  auto ws = std::make_shared<WsSession>(server_, std::move(stream_), std::move(fn),
                                        std::move(request_id));
  ws->Start(std::move(msg));
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

}  // namespace

// --- Server::Impl ---

bool Server::Impl::Register(const std::shared_ptr<Session>& session) {
  Metrics().open_connections.Increment();
  absl::MutexLock lock(&sessions_mu_);
  sessions_.emplace(session.get(), session);
  return stopping_.load();
}

void Server::Impl::Unregister(Session* session) {
  bool registered = false;
  {
    absl::MutexLock lock(&sessions_mu_);
    registered = sessions_.erase(session) > 0;
  }
  if (registered) Metrics().open_connections.Decrement();
}

absl::Status Server::Impl::Listen() {
  const std::string& address = options_.address;
  size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\" is not host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  beast::error_code ec;
  net::ip::address ip = net::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", address, "\": the host must be an IP address"));
  }
  if (options_.io_threads < 1 || options_.workers < 1 || options_.max_streams < 0) {
    return absl::InvalidArgumentError("io_threads and workers must be at least 1");
  }
  tcp::endpoint endpoint(ip, static_cast<unsigned short>(port));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  address_ = EndpointText(tcp::endpoint(ip, static_cast<unsigned short>(port_)));
  return absl::OkStatus();
}

void Server::Impl::Run() {
  absl::MutexLock lock(&shutdown_mu_);
  started_ = true;
  work_.emplace(ioc_.get_executor());
  workers_.Start(options_.workers);
  net::post(acceptor_.get_executor(), [this] { Accept(); });
  for (int i = 0; i < options_.io_threads; ++i) io_threads_.emplace_back([this] { ioc_.run(); });
}

void Server::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;
    if (ec) {
      // Out of descriptors and the like: retry soon instead of spinning.
      log::Warn("http accept failed", {{"error", ec.message()}, {"address", address_}});
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](beast::error_code ec) {
        if (!ec && acceptor_.is_open()) Accept();
      });
      return;
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<Connection>(this, std::move(socket))->Start();
    Accept();
  });
}

void Server::Impl::StopSessions(bool force) {
  std::vector<std::shared_ptr<Session>> sessions;
  {
    absl::MutexLock lock(&sessions_mu_);
    for (auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) sessions.push_back(std::move(s));
    }
  }
  for (auto& s : sessions) s->Stop(force);
  // The last references may drop here, outside sessions_mu_ (destructors
  // Unregister).
}

void Server::Impl::WaitForSessions(absl::Time deadline) {
  absl::MutexLock lock(&sessions_mu_);
  sessions_mu_.AwaitWithDeadline(
      absl::Condition(
          +[](absl::flat_hash_map<Session*, std::weak_ptr<Session>>* s) { return s->empty(); },
          &sessions_),
      deadline);
}

void Server::Impl::Shutdown(std::chrono::milliseconds grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  if (!started_) return;
  const absl::Time deadline = absl::Now() + absl::FromChrono(grace);
  {
    // Under sessions_mu_, so that a session registering concurrently either
    // is in the snapshot below or learns from Register that it must close.
    absl::MutexLock sessions_lock(&sessions_mu_);
    stopping_ = true;
  }
  // Stop accepting: from here on new connections are refused by the kernel.
  std::promise<void> closed;
  net::post(acceptor_.get_executor(), [this, &closed] {
    beast::error_code ec;
    acceptor_.close(ec);
    accept_retry_.cancel();
    closed.set_value();
  });
  closed.get_future().wait();

  StopSessions(/*force=*/false);
  WaitForSessions(deadline);
  StopSessions(/*force=*/true);
  // Handlers still running finish (they have deadlines); stream handlers see
  // Closed() and return.
  workers_.Stop();
  stream_threads_.JoinAll();
  work_.reset();
  // Closed sockets' pending operations complete with errors and release
  // their sessions; give them a moment before stopping the loop.
  WaitForSessions(absl::Now() + absl::Seconds(1));
  ioc_.stop();
  for (std::thread& t : io_threads_) t.join();
  io_threads_.clear();
}

// --- Server ---

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(std::chrono::milliseconds(0)); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options, Handler handler) {
  if (!handler) return absl::InvalidArgumentError("no handler");
  auto impl = std::make_unique<Impl>(std::move(options), std::move(handler));
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  impl->Run();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

const std::string& Server::address() const { return impl_->address(); }

int Server::port() const { return impl_->port(); }

void Server::Shutdown(std::chrono::milliseconds grace) { impl_->Shutdown(grace); }

}  // namespace c2d::httpd
