#pragma once

// The parts of the HTTP server (server.h) its files share: the server's
// state (Server::Impl), what it tracks per connection (Session), the
// handler threads, metrics, and the hand-off of one write from a handler
// thread to a connection's strand. server.cc runs the listener and the
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

// The writer thread's own bound on that wait, in case the socket timeout
// cannot fire (it always should first).
constexpr absl::Duration kStreamWaitTimeout = absl::Seconds(15);

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

// Serves a new connection (connection.cc).
void StartConnection(Server::Impl* server, tcp::socket socket);
// Takes over an upgraded connection whose request `msg` asked for a
// WebSocket, and runs `fn` on its own thread (websocket.cc). The caller
// holds a stream slot (Server::Impl::AcquireStream), which this releases.
void UpgradeToWebSocket(Server::Impl* server, beast::tcp_stream stream, HttpRequest msg,
                        std::function<void(WebSocket&)> fn, std::string request_id);

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
  internal::ThreadSet& stream_threads() { return stream_threads_; }
  const std::string& address() const { return address_; }
  int port() const { return port_; }

  // Tracks a new session; true when the server is already stopping (the
  // caller then closes it: it missed Shutdown's Stop).
  bool Register(const std::shared_ptr<internal::Session>& session);
  void Unregister(internal::Session* session);

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
  absl::flat_hash_map<internal::Session*, std::weak_ptr<internal::Session>> sessions_
      ABSL_GUARDED_BY(sessions_mu_);

  internal::WorkerPool workers_;
  internal::ThreadSet stream_threads_;
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
