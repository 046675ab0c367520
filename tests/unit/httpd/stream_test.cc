// Streams and WebSockets: chunks as they are sent, disconnects heard, the
// stream limit, no thread per stream, WebSocket messages and closure.

#include <dirent.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "libs/http/client.h"
#include "tests/unit/httpd/support.h"

namespace c2d {
namespace {

using namespace httpd_test;
using httpd::Stream;

// Sends from a test thread and waits for the outcome (never from an I/O
// thread: Send's callback runs there).
bool SendAndWait(Stream& s, std::string data) {
  std::promise<bool> sent;
  s.Send(std::move(data), [&](bool ok) { sent.set_value(ok); });
  return sent.get_future().get();
}

// Where a handler leaves its Stream for the test's thread.
class Handed {
 public:
  void Put(std::shared_ptr<Stream> s) {
    std::lock_guard<std::mutex> lock(mu_);
    streams_.push_back(std::move(s));
  }
  // The first one handed over, waiting up to 10 s.
  std::shared_ptr<Stream> Take() {
    testing::WaitFor(10s, [&] {
      std::lock_guard<std::mutex> lock(mu_);
      return !streams_.empty();
    });
    std::lock_guard<std::mutex> lock(mu_);
    if (streams_.empty()) return nullptr;
    std::shared_ptr<Stream> s = std::move(streams_.front());
    streams_.erase(streams_.begin());
    return s;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return streams_.size();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    streams_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<Stream>> streams_;
};

int ThreadCount() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

TEST_CASE("a stream delivers each chunk as it is sent") {
  Handed handed;
  auto server = StartServer([&](Request&) {
    Response r;
    r.headers = {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}};
    r.stream = [&](std::shared_ptr<Stream> s) { handed.Put(std::move(s)); };
    return r;
  });

  std::atomic<bool> client_saw_first{false};
  std::atomic<bool> first_sent{false};
  std::atomic<bool> second_sent{false};
  std::thread driver([&] {
    std::shared_ptr<Stream> s = handed.Take();
    if (s == nullptr) return;
    first_sent = SendAndWait(*s, "data: first\n\n");
    // The second chunk only once the client holds the first: proof that
    // chunks are not held back until the response ends.
    if (WaitFlag(client_saw_first)) second_sent = SendAndWait(*s, "data: second\n\n");
    // Dropping the last reference ends the response.
  });
  std::string received;
  auto r = http::Send({.url = Url(*server, "/events"), .on_body = [&](absl::string_view chunk) {
                         received.append(chunk.data(), chunk.size());
                         if (absl::StrContains(received, "first")) client_saw_first = true;
                         return true;
                       }});
  driver.join();
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(r->Header("content-type") == "text/event-stream");
  CHECK(r->Header("transfer-encoding") == "chunked");
  CHECK(!r->Header("x-request-id").empty());
  CHECK(first_sent);
  CHECK(second_sent);
  CHECK(received == "data: first\n\ndata: second\n\n");
}

TEST_CASE("a stream driven by its callbacks alone, then the connection serves the next request") {
  std::atomic<bool> all_sent{false};
  auto server = StartServer([&](Request& req) {
    if (req.path != "/stream") return Text("plain");
    Response r;
    r.stream = [&](std::shared_ptr<Stream> s) {
      s->Send("one", [&, s](bool one) {
        s->Send("", [&, s, one](bool empty) {  // sends nothing, ends nothing
          s->Send("two", [&, s, one, empty](bool two) {
            all_sent = one && empty && two;
            s->End();
          });
        });
      });
    };
    return r;
  });
  RawClient client(server->port());
  client.Send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  auto streamed = client.Read();
  REQUIRE(streamed.has_value());
  CHECK(streamed->body == "onetwo");
  CHECK(all_sent);
  client.Send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  auto next = client.Read();
  REQUIRE(next.has_value());
  CHECK(next->body == "plain");
}

TEST_CASE("a stream handler hears OnClose once the client disconnects") {
  Handed handed;
  std::atomic<bool> heard{false};
  auto server = StartServer([&](Request&) {
    Response r;
    r.stream = [&](std::shared_ptr<Stream> s) {
      s->OnClose([&] { heard = true; });
      handed.Put(std::move(s));
    };
    return r;
  });
  RawClient client(server->port());
  client.Send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  auto head = client.ReadHead();
  REQUIRE(head.has_value());
  CHECK(head->headers["transfer-encoding"] == "chunked");
  std::shared_ptr<Stream> s = handed.Take();
  REQUIRE(s != nullptr);
  CHECK(!s->Closed());
  client.Close();
  CHECK(WaitFlag(heard));
  CHECK(s->Closed());
  CHECK(!SendAndWait(*s, "too late"));
  // OnClose after the fact runs at once.
  std::atomic<bool> late_heard{false};
  s->OnClose([&] { late_heard = true; });
  CHECK(WaitFlag(late_heard));
}

TEST_CASE("a second Send before the first is done fails") {
  Handed handed;
  auto server = StartServer([&](Request&) {
    Response r;
    r.stream = [&](std::shared_ptr<Stream> s) { handed.Put(std::move(s)); };
    return r;
  });
  RawClient client(server->port());
  client.Send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(client.ReadHead().has_value());
  std::shared_ptr<Stream> s = handed.Take();
  REQUIRE(s != nullptr);
  // The first is larger than the socket buffers take while the client
  // does not read: it is still being written when the second comes.
  const std::string big(8 << 20, 'a');
  std::promise<bool> first, second;
  s->Send(big, [&](bool ok) { first.set_value(ok); });
  s->Send("b", [&](bool ok) { second.set_value(ok); });
  CHECK(!second.get_future().get());
  auto chunk = client.ReadChunk();
  REQUIRE(chunk.has_value());
  CHECK(chunk->size() == big.size());
  CHECK(first.get_future().get());
  s->End();
  CHECK(client.ReadChunk() == std::optional<std::string>(""));
}

TEST_CASE("streams beyond max_streams get 503 and open ones cost no thread") {
  Handed handed;
  httpd::ServerOptions options;
  options.max_streams = 300;
  auto server = StartServer(
      [&](Request&) {
        Response r;
        r.stream = [&](std::shared_ptr<Stream> s) { handed.Put(std::move(s)); };
        return r;
      },
      options);
  const int threads_before = ThreadCount();
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 300; ++i) {
    clients.push_back(std::make_unique<RawClient>(server->port()));
    clients.back()->Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(clients.back()->ReadHead().has_value());
  }
  CHECK(testing::WaitFor(10s, [&] { return handed.size() == 300; }));
  CHECK(ThreadCount() - threads_before < 4);  // 300 open streams, no thread of their own

  auto refused = http::Send({.url = Url(*server, "/b")});
  REQUIRE(refused.ok());
  CHECK(refused->status == 503);
  // Letting go of the streams gives their slots back.
  handed.Clear();
  for (auto& c : clients) CHECK(c->ReadChunk() == std::optional<std::string>(""));
  RawClient again(server->port());
  again.Send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
  auto head = again.ReadHead();
  REQUIRE(head.has_value());
  CHECK(head->status == 200);
  CHECK(testing::WaitFor(10s, [&] { return handed.size() == 1; }));
  handed.Clear();  // the server's shutdown waits for every stream to be let go
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
      r.websocket = [&](std::shared_ptr<Stream> ws) {
        const bool open = !ws->Closed();
        ws->Send("hello", [&, ws, open](bool hello) {
          ws->Send("world", [&, ws, open, hello](bool world) {
            sent = open && hello && world;
            ws->End();
          });
        });
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

TEST_CASE("a WebSocket handler hears OnClose once the client closes") {
  Handed handed;
  std::atomic<bool> heard{false};
  auto server = StartServer([&](Request&) {
    Response r;
    r.websocket = [&](std::shared_ptr<Stream> ws) {
      ws->OnClose([&] { heard = true; });
      handed.Put(std::move(ws));
    };
    return r;
  });
  boost::asio::io_context ioc;
  websocket::response_type handshake;
  auto ws = ConnectWebSocket(ioc, server->port(), &handshake);
  std::shared_ptr<Stream> s = handed.Take();
  REQUIRE(s != nullptr);
  ws.write(boost::asio::buffer(std::string("ignored by the server")));
  beast::error_code ec;
  ws.close(websocket::close_code::normal, ec);
  CHECK(!ec);
  CHECK(WaitFlag(heard));
  CHECK(s->Closed());
  CHECK(!SendAndWait(*s, "too late"));
}

}  // namespace
}  // namespace c2d
