#pragma once

// The parts of the HTTP server (server.h) its files share: the server's
// state (Server::Impl), what it tracks per connection (Session), the
// handler threads, metrics, and the Stream a stream handler holds (a
// handle on a connection's strand). server.cc runs the listener and the
// shutdown, connection.cc the HTTP connections, websocket.cc the
// WebSocket sessions after an upgrade. Not for use outside libs/httpd.

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/httpd/server.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace c2d::httpd {
namespace internal {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using HttpRequest = http::request<http::string_body>;

struct HttpMetrics {
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& seconds;
  prometheus::Gauge& open_connections;
  prometheus::Gauge& streams;
};
// Shared by every Server in the process.
HttpMetrics& Metrics();
// One answered request; route "" counts as "unmatched".
void RecordRequest(absl::string_view method, const std::string& route, int status, double seconds);

std::string EndpointText(const tcp::endpoint& ep);

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

// What a Stream drives: a chunked response (Connection) or a WebSocket
// session. Each call posts to the session's strand and returns at once.
// `id` names the stream: a keep-alive connection serves one after another,
// and calls for an earlier one fail (Send) or do nothing.
class StreamTarget {
 public:
  virtual ~StreamTarget() = default;
  virtual void StreamSend(uint64_t id, std::string data, Stream::Done done) = 0;
  virtual void StreamOnClose(uint64_t id, std::function<void()> fn) = 0;
  virtual void StreamEnd(uint64_t id) = 0;
  virtual bool StreamClosed(uint64_t id) const = 0;
};

// The Stream a handler holds. Ends the response when dropped, then gives
// the server back its stream slot.
class StreamHandle final : public Stream {
 public:
  StreamHandle(Server::Impl* server, std::shared_ptr<StreamTarget> target, uint64_t id);
  ~StreamHandle() override;
  void Send(std::string data, Done done) override {
    target_->StreamSend(id_, std::move(data), std::move(done));
  }
  void OnClose(std::function<void()> fn) override { target_->StreamOnClose(id_, std::move(fn)); }
  void End() override;
  bool Closed() const override { return ended_.load() || target_->StreamClosed(id_); }

 private:
  Server::Impl* const server_;
  std::shared_ptr<StreamTarget> target_;
  const uint64_t id_;
  std::atomic<bool> ended_{false};
};

// Serves a new connection (connection.cc).
void StartConnection(Server::Impl* server, tcp::socket socket);
// Takes over an upgraded connection whose request `msg` asked for a
// WebSocket, and hands `fn` its Stream once the handshake is done
// (websocket.cc). The caller holds a stream slot
// (Server::Impl::AcquireStream), which the Stream (or a failed handshake)
// releases.
void UpgradeToWebSocket(Server::Impl* server, beast::tcp_stream stream, HttpRequest msg,
                        std::function<void(std::shared_ptr<Stream>)> fn, std::string request_id);
// Calls a handler's stream function with its Stream, on the session's
// strand, logging what it throws.
void StartHandler(const std::function<void(std::shared_ptr<Stream>)>& fn,
                  std::shared_ptr<Stream> stream, const std::string& request_id);

}  // namespace internal

class Server::Impl {
 public:
  Impl(ServerOptions options, Handler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        ioc_(std::max(1, options_.io_threads)),
        acceptor_(internal::net::make_strand(ioc_)),
        accept_retry_(acceptor_.get_executor()) {}
  ~Impl() { Shutdown(std::chrono::milliseconds(0)); }

  absl::Status Listen();
  void Run();
  void Shutdown(std::chrono::milliseconds grace);

  const ServerOptions& options() const { return options_; }
  const Handler& handler() const { return handler_; }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  internal::WorkerPool& workers() { return workers_; }
  const std::string& address() const { return address_; }
  int port() const { return port_; }

  // Tracks a new session; true when the server is already stopping (the
  // caller then closes it: it missed Shutdown's Stop).
  bool Register(const std::shared_ptr<internal::Session>& session);
  void Unregister(internal::Session* session);

  // A slot for a stream or WebSocket; false when max_streams are open.
  bool AcquireStream() {
    absl::MutexLock lock(&streams_mu_);
    if (active_streams_ >= options_.max_streams) return false;
    ++active_streams_;
    return true;
  }
  void ReleaseStream() {
    absl::MutexLock lock(&streams_mu_);
    --active_streams_;
  }

 private:
  void Accept();
  void StopSessions(bool force);
  void WaitForSessions(absl::Time deadline);
  // Until every Stream handlers held is gone.
  void WaitForStreams();

  const ServerOptions options_;
  const Handler handler_;
  std::string address_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  absl::Mutex streams_mu_;
  int active_streams_ ABSL_GUARDED_BY(streams_mu_) = 0;

  absl::Mutex shutdown_mu_;
  bool started_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;

  absl::Mutex sessions_mu_;
  absl::flat_hash_map<internal::Session*, std::weak_ptr<internal::Session>> sessions_
      ABSL_GUARDED_BY(sessions_mu_);

  internal::WorkerPool workers_;
  std::vector<std::thread> io_threads_;

  // Destroyed first, while everything above is alive: destroying the
  // io_context destroys pending handlers and with them the last references
  // to sessions, whose destructors Unregister.
  internal::net::io_context ioc_;
  std::optional<internal::net::executor_work_guard<internal::net::io_context::executor_type>> work_;
  // The acceptor and its retry timer live on one strand, so Shutdown can close
  // the acceptor without racing a completion.
  internal::tcp::acceptor acceptor_;
  internal::net::steady_timer accept_retry_;
};

}  // namespace c2d::httpd
