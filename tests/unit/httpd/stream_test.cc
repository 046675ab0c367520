// Streams and WebSockets: chunks as they are written, disconnects noticed,
// the stream limit, WebSocket messages and closure.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "libs/http/client.h"
#include "tests/unit/httpd/support.h"

namespace c2d {
namespace {

using namespace httpd_test;

TEST_CASE("a stream delivers each chunk as it is written") {
  std::atomic<bool> client_saw_first{false};
  std::atomic<bool> first_written{false};
  std::atomic<bool> handler_saw_client{false};
  auto server = StartServer([&](Request&) {
    Response r;
    r.headers = {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}};
    r.stream = [&](httpd::StreamWriter& w) {
      // (Catch2 assertions are for the test's thread: handler threads set flags.)
      first_written = w.Write("data: first\n\n");
      // The second chunk only once the client holds the first: proof that
      // chunks are not held back until the handler returns.
      handler_saw_client = WaitFlag(client_saw_first);
      w.Write("data: second\n\n");
    };
    return r;
  });

  std::string received;
  auto r = http::Send({.url = Url(*server, "/events"), .on_body = [&](absl::string_view chunk) {
                         received.append(chunk.data(), chunk.size());
                         if (absl::StrContains(received, "first")) client_saw_first = true;
                         return true;
                       }});
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(r->Header("content-type") == "text/event-stream");
  CHECK(r->Header("transfer-encoding") == "chunked");
  CHECK(!r->Header("x-request-id").empty());
  CHECK(first_written);
  CHECK(handler_saw_client);
  CHECK(received == "data: first\n\ndata: second\n\n");
}

TEST_CASE("a connection stays usable after a stream ends") {
  auto server = StartServer([](Request& req) {
    if (req.path != "/stream") return Text("plain");
    Response r;
    r.stream = [](httpd::StreamWriter& w) {
      w.Write("one");
      w.Write("");  // sends nothing, ends nothing
      w.Write("two");
    };
    return r;
  });
  RawClient client(server->port());
  client.Send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  auto streamed = client.Read();
  REQUIRE(streamed.has_value());
  CHECK(streamed->body == "onetwo");
  client.Send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  auto next = client.Read();
  REQUIRE(next.has_value());
  CHECK(next->body == "plain");
}

TEST_CASE("a stream handler sees Closed once the client disconnects") {
  std::atomic<bool> started{false};
  std::atomic<bool> saw_closed{false};
  std::atomic<bool> late_write_failed{false};
  auto server = StartServer([&](Request&) {
    Response r;
    r.stream = [&](httpd::StreamWriter& w) {
      started = true;
      // Polls without writing, as an event stream waiting for events does.
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (!w.Closed() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
      }
      late_write_failed = !w.Write("too late");
      saw_closed = w.Closed();
    };
    return r;
  });
  RawClient client(server->port());
  client.Send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  auto head = client.ReadHead();
  REQUIRE(head.has_value());
  CHECK(head->headers["transfer-encoding"] == "chunked");
  REQUIRE(WaitFlag(started));
  client.Close();
  CHECK(WaitFlag(saw_closed));
  CHECK(late_write_failed);
}

TEST_CASE("streams beyond max_streams get 503") {
  std::atomic<bool> release{false};
  std::atomic<bool> started{false};
  httpd::ServerOptions options;
  options.max_streams = 1;
  auto server = StartServer(
      [&](Request&) {
        Response r;
        r.stream = [&](httpd::StreamWriter& w) {
          started = true;
          WaitFlag(release);
          w.Write("done");
        };
        return r;
      },
      options);
  RawClient first(server->port());
  first.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(first.ReadHead().has_value());
  REQUIRE(WaitFlag(started));

  auto second = http::Send({.url = Url(*server, "/b")});
  REQUIRE(second.ok());
  CHECK(second->status == 503);
  release = true;
}

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;

websocket::stream<tcp::socket> ConnectWebSocket(boost::asio::io_context& ioc, int port,
                                                websocket::response_type* response) {
  tcp::socket socket(ioc);
  socket.connect(
      tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  websocket::stream<tcp::socket> ws(std::move(socket));
  ws.handshake(*response, "127.0.0.1", "/ws");
  return ws;
}

TEST_CASE("a WebSocket handler's messages reach the client, then a normal closure") {
  std::atomic<bool> sent{false};
  auto server = StartServer([&](Request& req) {
    Response r = Text("plain response");
    if (req.path == "/ws") {
      r.websocket = [&](httpd::WebSocket& ws) {
        bool open = !ws.Closed();
        bool hello = ws.Send("hello");
        sent = open && hello && ws.Send("world");
      };
    }
    return r;
  });

  boost::asio::io_context ioc;
  websocket::response_type handshake;
  auto ws = ConnectWebSocket(ioc, server->port(), &handshake);
  CHECK(handshake.result_int() == 101);
  auto id = handshake["X-Request-Id"];
  CHECK(absl::StartsWith(absl::string_view(id.data(), id.size()), "req_"));
  std::vector<std::string> messages;
  beast::error_code ec;
  for (;;) {
    beast::flat_buffer buffer;
    ws.read(buffer, ec);
    if (ec) break;
    CHECK(ws.got_text());
    messages.push_back(beast::buffers_to_string(buffer.data()));
  }
  CHECK(ec == websocket::error::closed);
  CHECK(ws.reason().code == websocket::close_code::normal);
  CHECK(messages == std::vector<std::string>{"hello", "world"});
  CHECK(sent);

  // Without an upgrade, the same handler's plain response is served.
  auto plain = http::Send({.url = Url(*server, "/ws")});
  REQUIRE(plain.ok());
  CHECK(plain->status == 200);
  CHECK(plain->body == "plain response");
}

TEST_CASE("a WebSocket handler sees Closed once the client closes") {
  std::atomic<bool> saw_closed{false};
  std::atomic<bool> started{false};
  std::atomic<bool> late_send_failed{false};
  auto server = StartServer([&](Request&) {
    Response r;
    r.websocket = [&](httpd::WebSocket& ws) {
      started = true;
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (!ws.Closed() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
      }
      late_send_failed = !ws.Send("too late");
      saw_closed = ws.Closed();
    };
    return r;
  });
  boost::asio::io_context ioc;
  websocket::response_type handshake;
  auto ws = ConnectWebSocket(ioc, server->port(), &handshake);
  REQUIRE(WaitFlag(started));
  ws.write(boost::asio::buffer(std::string("ignored by the server")));
  beast::error_code ec;
  ws.close(websocket::close_code::normal, ec);
  CHECK(!ec);
  CHECK(WaitFlag(saw_closed));
  CHECK(late_send_failed);
}

}  // namespace
}  // namespace c2d
