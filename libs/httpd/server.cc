// The server's listener, session tracking and shutdown, and its metrics;
// connections live in connection.cc and websocket.cc.
#include "libs/httpd/server.h"

#include <boost/asio/post.hpp>
#include <future>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/httpd/server_internal.h"
#include "libs/metrics/metrics.h"

namespace c2d::httpd {
namespace internal {

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
            .Help("Open streams and WebSockets")
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

std::string EndpointText(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return absl::StrCat("[", ep.address().to_string(), "]:", ep.port());
  return absl::StrCat(ep.address().to_string(), ":", ep.port());
}

Session::~Session() { server_->Unregister(this); }

StreamHandle::StreamHandle(Server::Impl* server, std::shared_ptr<StreamTarget> target, uint64_t id)
    : server_(server), target_(std::move(target)), id_(id) {
  Metrics().streams.Increment();
}

StreamHandle::~StreamHandle() {
  End();
  // The session goes first: once the slot is back, Shutdown may finish.
  target_.reset();
  Metrics().streams.Decrement();
  server_->ReleaseStream();
}

void StreamHandle::End() {
  if (!ended_.exchange(true)) target_->StreamEnd(id_);
}

void StartHandler(const std::function<void(std::shared_ptr<Stream>)>& fn,
                  std::shared_ptr<Stream> stream, const std::string& request_id) {
  log::Scope scope(nlohmann::json{{"request_id", request_id}});
  try {
    fn(std::move(stream));
  } catch (const std::exception& e) {
    log::Error("http stream handler threw", {{"error", e.what()}});
  } catch (...) {
    log::Error("http stream handler threw");
  }
}

}  // namespace internal

using namespace internal;

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
    StartConnection(this, std::move(socket));
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

void Server::Impl::WaitForStreams() {
  absl::MutexLock lock(&streams_mu_);
  while (!streams_mu_.AwaitWithTimeout(absl::Condition(
                                           +[](int* n) { return *n == 0; }, &active_streams_),
                                       absl::Seconds(10))) {
    log::Warn("http server shutdown waits for stream handlers to let go of their streams",
              {{"streams", active_streams_}, {"address", address_}});
  }
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
  // Handlers still running finish (they have deadlines); stream handlers
  // heard OnClose and let go of their streams.
  workers_.Stop();
  WaitForStreams();
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
