// WebSocket sessions: a connection after its upgrade, whose handler sends
// text messages through a Stream. See server_internal.h.

#include <boost/asio/post.hpp>
#include <boost/beast/websocket.hpp>

#include "libs/common/log.h"
#include "libs/httpd/server_internal.h"

namespace c2d::httpd::internal {
namespace {

namespace websocket = beast::websocket;

class WsSession : public Session, public StreamTarget {
 public:
  WsSession(Server::Impl* server, beast::tcp_stream stream,
            std::function<void(std::shared_ptr<Stream>)> fn, std::string request_id)
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
      self->FireClose();
      if (force) self->CloseSocket();
    });
  }

  // StreamTarget: one stream per session, so ids need no checking.
  void StreamSend(uint64_t, std::string data, Stream::Done done) override {
    net::post(executor_, [self = Self(), data = std::move(data), done = std::move(done)]() mutable {
      self->SendMessage(std::move(data), std::move(done));
    });
  }
  void StreamOnClose(uint64_t, std::function<void()> fn) override {
    net::post(executor_, [self = Self(), fn = std::move(fn)]() mutable {
      if (self->end_requested_) return;
      if (self->closed_) {
        fn();
      } else {
        self->on_close_ = std::move(fn);
      }
    });
  }
  void StreamEnd(uint64_t) override {
    net::post(executor_, [self = Self()] {
      if (self->end_requested_) return;
      self->end_requested_ = true;
      self->on_close_ = nullptr;
      if (!self->sending_) self->OnHandlerDone();
    });
  }
  bool StreamClosed(uint64_t) const override { return closed_.load(); }

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
    // The handle owns the slot from here on.
    StartHandler(fn_, std::make_shared<StreamHandle>(server_, Self(), 0), request_id_);
  }

  void SendMessage(std::string data, Stream::Done done) {
    if (closed_ || peer_gone_ || end_requested_ || sending_) {
      done(false);
      return;
    }
    sending_ = true;
    out_ = std::move(data);
    ws_.async_write(net::buffer(out_),
                    [self = Self(), done = std::move(done)](beast::error_code ec, size_t) {
                      self->sending_ = false;
                      if (ec) {
                        self->closed_ = true;
                        self->FireClose();
                      }
                      done(!ec);
                      if (self->end_requested_) self->OnHandlerDone();
                    });
  }

  // The client or the server is closing: the handler hears of it.
  void FireClose() {
    closed_ = true;
    if (on_close_) {
      std::function<void()> fn = std::move(on_close_);
      on_close_ = nullptr;
      fn();
    }
  }

  // Reads and drops client messages; the read also answers pings and
  // completes the close handshake.
  void Read() {
    ws_.async_read(buffer_, [self = Self()](beast::error_code ec, size_t) {
      if (ec) {
        self->peer_gone_ = true;
        self->FireClose();
        if (ec != websocket::error::closed) self->CloseSocket();
        return;
      }
      self->buffer_.clear();
      self->Read();
    });
  }

  void OnHandlerDone() {
    if (handler_done_) return;
    handler_done_ = true;
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
    FireClose();
    beast::get_lowest_layer(ws_).close();
  }

  const net::any_io_executor executor_;  // the strand
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  HttpRequest upgrade_;
  const std::function<void(std::shared_ptr<Stream>)> fn_;
  const std::string request_id_;
  std::atomic<bool> closed_{false};  // read on any thread by StreamClosed
  // On the strand.
  bool peer_gone_ = false;
  bool stopping_ = false;
  bool sending_ = false;
  bool end_requested_ = false;
  bool handler_done_ = false;
  std::string out_;
  std::function<void()> on_close_;
};

}  // namespace

void UpgradeToWebSocket(Server::Impl* server, beast::tcp_stream stream, HttpRequest msg,
                        std::function<void(std::shared_ptr<Stream>)> fn, std::string request_id) {
  auto ws =
      std::make_shared<WsSession>(server, std::move(stream), std::move(fn), std::move(request_id));
  ws->Start(std::move(msg));
}

}  // namespace c2d::httpd::internal
