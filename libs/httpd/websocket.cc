// WebSocket sessions: a connection after its upgrade, with the handler on
// a thread of its own sending text messages. See server_internal.h.

#include <boost/asio/post.hpp>
#include <boost/beast/websocket.hpp>
#include <exception>

#include "libs/common/log.h"
#include "libs/httpd/server_internal.h"

namespace c2d::httpd::internal {
namespace {

namespace websocket = beast::websocket;

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

}  // namespace

void UpgradeToWebSocket(Server::Impl* server, beast::tcp_stream stream, HttpRequest msg,
                        std::function<void(WebSocket&)> fn, std::string request_id) {
  auto ws =
      std::make_shared<WsSession>(server, std::move(stream), std::move(fn), std::move(request_id));
  ws->Start(std::move(msg));
}

}  // namespace c2d::httpd::internal
