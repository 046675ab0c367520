// The HTTP server and router the gateway sits on, driven over loopback by
// libcurl, by raw sockets (for what a well-behaved client never does:
// garbage, partial headers, pipelining, vanishing mid-stream) and by a Beast
// WebSocket client. Every wait has a generous deadline; nothing asserts speed.

#include "libs/httpd/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/http/client.h"
#include "libs/httpd/router.h"
#include "libs/metrics/metrics.h"
#include "nlohmann/json.hpp"
#include "tests/support/pg_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using httpd::Request;
using httpd::Response;

std::unique_ptr<httpd::Server> StartServer(httpd::Handler handler,
                                           httpd::ServerOptions options = {}) {
  options.workers = 4;
  auto server = httpd::Server::Start(std::move(options), std::move(handler));
  REQUIRE(server.ok());
  return std::move(*server);
}

std::string Url(const httpd::Server& server, absl::string_view path) {
  return absl::StrCat("http://", server.address(), path);
}

Response Text(std::string body, int status = 200) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain");
  r.body = std::move(body);
  return r;
}

// Waits up to 10 s for `flag`.
bool WaitFlag(const std::atomic<bool>& flag) {
  return testing::WaitFor(10s, [&] { return flag.load(); });
}

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// A blocking HTTP/1.1 client over a plain socket, for requests libcurl
// would not send; every read has a deadline.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { Close(); }

  bool connected() const { return connected_; }

  void Send(absl::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  // The status line and headers of the next response.
  std::optional<RawResponse> ReadHead() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    RawResponse r;
    std::vector<std::string> lines = absl::StrSplit(buf_.substr(0, end), "\r\n");
    std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
    if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &r.status)) return std::nullopt;
    for (size_t i = 1; i < lines.size(); ++i) {
      std::pair<std::string, std::string> kv = absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
      r.headers[absl::AsciiStrToLower(kv.first)] =
          std::string(absl::StripAsciiWhitespace(kv.second));
    }
    buf_.erase(0, end + 4);
    return r;
  }

  // One chunk of a chunked body; "" at the last chunk, nullopt on failure.
  std::optional<std::string> ReadChunk() {
    size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    size_t size = 0;
    if (!absl::SimpleHexAtoi(buf_.substr(0, eol), &size)) return std::nullopt;
    while (buf_.size() < eol + 2 + size + 2) {
      if (!Fill()) return std::nullopt;
    }
    std::string chunk = buf_.substr(eol + 2, size);
    buf_.erase(0, eol + 2 + size + 2);
    return chunk;
  }

  // A whole response (Content-Length or chunked).
  std::optional<RawResponse> Read() {
    std::optional<RawResponse> r = ReadHead();
    if (!r) return r;
    if (r->headers["transfer-encoding"] == "chunked") {
      for (;;) {
        std::optional<std::string> chunk = ReadChunk();
        if (!chunk) return std::nullopt;
        if (chunk->empty()) break;
        r->body += *chunk;
      }
      return r;
    }
    size_t length = 0;
    if (!absl::SimpleAtoi(r->headers["content-length"], &length)) return r;
    while (buf_.size() < length) {
      if (!Fill()) return std::nullopt;
    }
    r->body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }

  // True when the server closes the connection within 10 s (what it sends
  // before is dropped).
  bool WaitClosed() {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!Fill()) return !timed_out_;
      buf_.clear();
    }
    return false;
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  // Appends what arrives within 10 s; false on EOF, error or timeout.
  bool Fill() {
    timed_out_ = false;
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, 10'000);
    if (ready == 0) timed_out_ = true;
    if (ready <= 0) return false;
    char data[16384];
    ssize_t n = ::recv(fd_, data, sizeof(data), 0);
    if (n <= 0) return false;
    buf_.append(data, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool timed_out_ = false;
  std::string buf_;
};

nlohmann::json ErrorBody(const std::string& body) {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

TEST_CASE("router matches literal segments and captures and answers 404 and 405") {
  httpd::Router router;
  router.Add("GET", "/v1/projects/{id}/services",
             [](Request& req) { return Text("list " + req.params.at("id")); });
  router.Add("POST", "/v1/projects/{id}/services", [](Request&) { return Text("create", 201); });
  router.Add("GET", "/v1/projects/{id}",
             [](Request& req) { return Text("get " + req.params["id"]); });
  router.Add("GET", "/v1/projects/search", [](Request&) { return Text("search"); });

  auto dispatch = [&](std::string method, std::string path, Request* out = nullptr) {
    Request req;
    req.method = std::move(method);
    req.path = std::move(path);
    Response r = router.Dispatch(req);
    if (out != nullptr) *out = req;
    return r;
  };

  Request req;
  Response r = dispatch("GET", "/v1/projects/prj_1/services", &req);
  CHECK(r.status == 200);
  CHECK(r.body == "list prj_1");
  CHECK(req.route == "/v1/projects/{id}/services");
  CHECK(req.params == std::map<std::string, std::string>{{"id", "prj_1"}});

  CHECK(dispatch("POST", "/v1/projects/prj_1/services").status == 201);
  CHECK(dispatch("GET", "/v1/projects/prj_2").body == "get prj_2");
  // A literal segment wins over a capture, whatever the order of Add.
  CHECK(dispatch("GET", "/v1/projects/search").body == "search");
  // HEAD runs the GET route.
  CHECK(dispatch("HEAD", "/v1/projects/prj_2").body == "get prj_2");

  r = dispatch("GET", "/v1/nothing/here", &req);
  CHECK(r.status == 404);
  CHECK(ErrorBody(r.body)["error"]["code"] == "not_found");
  CHECK(req.route.empty());
  // Captures take exactly one non-empty segment.
  CHECK(dispatch("GET", "/v1/projects//services").status == 404);
  CHECK(dispatch("GET", "/v1/projects/a/b/services").status == 404);
  CHECK(dispatch("GET", "/v1/projects/prj_1/").status == 404);

  r = dispatch("DELETE", "/v1/projects/prj_1/services");
  CHECK(r.status == 405);
  CHECK(ErrorBody(r.body)["error"]["code"] == "method_not_allowed");
  bool allow_found = false;
  for (const auto& [name, value] : r.headers) {
    if (name == "Allow") {
      allow_found = true;
      CHECK(value == "GET, POST");
    }
  }
  CHECK(allow_found);

  CHECK(router.Routes() ==
        std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/projects/{id}/services"},
                                                         {"POST", "/v1/projects/{id}/services"},
                                                         {"GET", "/v1/projects/{id}"},
                                                         {"GET", "/v1/projects/search"}});
}

TEST_CASE("the server hands the handler a decoded request") {
  httpd::Router router;
  router.Add("POST", "/v1/things/{id}", [](Request& req) {
    nlohmann::json j = {{"method", req.method},
                        {"target", req.target},
                        {"path", req.path},
                        {"id", req.params["id"]},
                        {"a", req.Query("a")},
                        {"b", req.Query("b")},
                        {"custom", req.Header("X-Custom")},
                        {"multi", req.headers["x-multi"]},
                        {"body", req.body},
                        {"remote", req.remote_addr},
                        {"missing", req.Header("x-missing")}};
    Response r;
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = j.dump();
    return r;
  });
  auto server = StartServer([&](Request& req) { return router.Dispatch(req); });
  CHECK(server->port() > 0);
  CHECK(server->address() == absl::StrCat("127.0.0.1:", server->port()));

  auto r = http::Send({.method = "POST",
                       .url = Url(*server, "/v1/things/t%201?a=x%26y&b=two+words&a=second"),
                       .headers = {{"X-Custom", "yes"}, {"X-Multi", "1"}, {"X-Multi", "2"}},
                       .body = "payload"});
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  auto j = nlohmann::json::parse(r->body);
  CHECK(j["method"] == "POST");
  CHECK(j["target"] == "/v1/things/t%201?a=x%26y&b=two+words&a=second");
  CHECK(j["path"] == "/v1/things/t 1");
  CHECK(j["id"] == "t 1");
  CHECK(j["a"] == "x&y");
  CHECK(j["b"] == "two words");
  CHECK(j["custom"] == "yes");
  CHECK(j["multi"] == "1, 2");
  CHECK(j["body"] == "payload");
  CHECK(j["missing"] == "");
  CHECK(absl::StartsWith(j["remote"].get<std::string>(), "127.0.0.1:"));

  // A body large enough for curl to ask for "100 Continue" first.
  std::string big(300'000, 'x');
  r = http::Send({.method = "POST", .url = Url(*server, "/v1/things/big"), .body = big});
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(nlohmann::json::parse(r->body)["body"] == big);
}

TEST_CASE("keep-alive serves pipelined requests in order on one connection") {
  auto server = StartServer([](Request& req) {
    if (req.path == "/slow") std::this_thread::sleep_for(100ms);
    return Text(req.path + " from " + req.remote_addr);
  });
  RawClient client(server->port());
  REQUIRE(client.connected());
  // Two requests in one write: the slow first one must still answer first.
  client.Send(
      "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
  auto first = client.Read();
  auto second = client.Read();
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK(absl::StartsWith(first->body, "/slow from "));
  CHECK(absl::StartsWith(second->body, "/fast from "));
  // The same peer address: the same connection.
  CHECK(first->body.substr(first->body.find(" from ")) ==
        second->body.substr(second->body.find(" from ")));
  CHECK(first->headers.count("connection") == 0);
  CHECK(first->headers["content-length"] == absl::StrCat(first->body.size()));

  client.Send("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto last = client.Read();
  REQUIRE(last.has_value());
  CHECK(last->status == 200);
  CHECK(last->headers["connection"] == "close");
  CHECK(client.WaitClosed());

  // HTTP/1.0 closes after the response unless asked otherwise.
  RawClient old(server->port());
  old.Send("GET /old HTTP/1.0\r\n\r\n");
  auto r = old.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(old.WaitClosed());

  // One connection per call (http::Send shares no handles).
  for (int i = 0; i < 3; ++i) {
    auto c = http::Send({.url = Url(*server, "/again")});
    REQUIRE(c.ok());
    CHECK(c->status == 200);
  }
}

TEST_CASE("every request gets an X-Request-Id, the client's when it is valid") {
  std::string seen;
  auto server = StartServer([&](Request& req) {
    seen = req.headers["x-request-id"];
    return Text("ok");
  });

  auto r = http::Send({.url = Url(*server, "/")});
  REQUIRE(r.ok());
  std::string generated = r->Header("x-request-id");
  CHECK(absl::StartsWith(generated, "req_"));
  CHECK(seen == generated);

  r = http::Send({.url = Url(*server, "/"), .headers = {{"X-Request-Id", "client-42.a_b"}}});
  REQUIRE(r.ok());
  CHECK(r->Header("x-request-id") == "client-42.a_b");
  CHECK(seen == "client-42.a_b");

  r = http::Send({.url = Url(*server, "/"), .headers = {{"X-Request-Id", "not valid!"}}});
  REQUIRE(r.ok());
  CHECK(absl::StartsWith(r->Header("x-request-id"), "req_"));
  CHECK(seen == r->Header("x-request-id"));

  // A handler's own X-Request-Id is kept.
  auto own = StartServer([](Request&) {
    Response resp = Text("ok");
    resp.headers.emplace_back("X-Request-Id", "from-handler");
    return resp;
  });
  r = http::Send({.url = Url(*own, "/")});
  REQUIRE(r.ok());
  CHECK(r->Header("x-request-id") == "from-handler");
  CHECK(r->headers.count("x-request-id") == 1);
}

TEST_CASE("a body over the limit gets 413 and the connection closes") {
  std::atomic<int> calls{0};
  httpd::ServerOptions options;
  options.max_body_bytes = 1024;
  auto server = StartServer(
      [&](Request&) {
        ++calls;
        return Text("ok");
      },
      options);

  // The Content-Length alone decides: the body is never sent.
  RawClient client(server->port());
  client.Send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
  auto r = client.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 413);
  CHECK(ErrorBody(r->body)["error"]["code"] == "payload_too_large");
  CHECK(client.WaitClosed());

  // A chunked body that grows beyond the limit.
  RawClient chunked(server->port());
  std::string chunk(800, 'y');
  chunked.Send(
      absl::StrCat("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                   "320\r\n", chunk, "\r\n", "320\r\n", chunk, "\r\n"));
  r = chunked.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 413);
  CHECK(chunked.WaitClosed());

  // Within the limit is fine.
  auto ok = http::Send({.method = "POST", .url = Url(*server, "/upload"), .body = chunk});
  REQUIRE(ok.ok());
  CHECK(ok->status == 200);
  CHECK(calls == 1);
}

TEST_CASE("malformed requests get 400 and oversized headers 431") {
  std::atomic<int> calls{0};
  httpd::ServerOptions options;
  options.max_header_bytes = 2048;
  auto server = StartServer(
      [&](Request&) {
        ++calls;
        return Text("ok");
      },
      options);

  RawClient garbage(server->port());
  garbage.Send("HELLO THERE\r\n\r\n");
  auto r = garbage.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 400);
  CHECK(ErrorBody(r->body)["error"]["code"] == "bad_request");
  CHECK(garbage.WaitClosed());

  RawClient bad_header(server->port());
  bad_header.Send("GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n");
  r = bad_header.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 400);
  CHECK(bad_header.WaitClosed());

  RawClient big(server->port());
  big.Send(
      absl::StrCat("GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", std::string(4096, 'z'), "\r\n\r\n"));
  r = big.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 431);
  CHECK(big.WaitClosed());

  CHECK(calls == 0);
  auto ok = http::Send({.url = Url(*server, "/")});
  REQUIRE(ok.ok());
  CHECK(ok->status == 200);
}

TEST_CASE("a client that sends its headers too slowly is disconnected") {
  httpd::ServerOptions options;
  options.header_timeout = 300ms;
  auto server = StartServer([](Request&) { return Text("ok"); }, options);

  RawClient slow(server->port());
  slow.Send("GET / HTTP/1.1\r\nHost: x\r\n");  // never finishes
  CHECK(slow.WaitClosed());

  RawClient silent(server->port());  // sends nothing at all
  CHECK(silent.WaitClosed());
}

TEST_CASE("a handler that throws gets 500 and the server keeps serving") {
  auto server = StartServer([](Request& req) -> Response {
    if (req.path == "/boom") throw std::runtime_error("handler exploded");
    return Text("fine");
  });
  auto r = http::Send({.url = Url(*server, "/boom")});
  REQUIRE(r.ok());
  CHECK(r->status == 500);
  CHECK(ErrorBody(r->body)["error"]["code"] == "internal");
  CHECK(!r->Header("x-request-id").empty());
  for (int i = 0; i < 3; ++i) {
    r = http::Send({.url = Url(*server, "/ok")});
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(r->body == "fine");
  }
}

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

TEST_CASE("Shutdown lets an in-flight request finish while refusing new connections") {
  std::atomic<bool> started{false};
  std::atomic<bool> release{false};
  auto server = StartServer([&](Request& req) {
    if (req.path == "/slow") {
      started = true;
      WaitFlag(release);
      return Text("finished");
    }
    return Text("quick");
  });
  const int port = server->port();

  // An idle keep-alive connection, which shutdown closes right away.
  RawClient idle(port);
  idle.Send("GET /quick HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(idle.Read().has_value());

  absl::StatusOr<http::Response> slow;
  std::thread client([&] { slow = http::Send({.url = Url(*server, "/slow")}); });
  REQUIRE(WaitFlag(started));

  std::atomic<bool> shut_down{false};
  std::thread stopper([&] {
    server->Shutdown(30s);
    shut_down = true;
  });
  CHECK(idle.WaitClosed());
  CHECK(testing::WaitFor(10s, [&] { return !RawClient(port).connected(); }));
  CHECK(!shut_down);  // still waiting for /slow

  release = true;
  client.join();
  stopper.join();
  REQUIRE(slow.ok());
  CHECK(slow->status == 200);
  CHECK(slow->body == "finished");
  CHECK(slow->Header("connection") == "close");
  server->Shutdown(0ms);  // idempotent
}

TEST_CASE("Shutdown tells stream handlers to stop and ends their responses") {
  std::atomic<bool> started{false};
  auto server = StartServer([&](Request&) {
    Response r;
    r.stream = [&](httpd::StreamWriter& w) {
      w.Write("tick");
      started = true;
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (!w.Closed() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
      }
    };
    return r;
  });
  RawClient client(server->port());
  client.Send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(WaitFlag(started));
  std::thread stopper([&] { server->Shutdown(30s); });
  auto r = client.Read();  // the stream ends properly with its last chunk
  stopper.join();
  REQUIRE(r.has_value());
  CHECK(r->body == "tick");
  CHECK(client.WaitClosed());
}

TEST_CASE("requests are counted by method, route pattern and code") {
  httpd::Router router;
  router.Add("GET", "/v1/metered/{id}", [](Request&) { return Text("ok"); });
  auto server = StartServer([&](Request& req) { return router.Dispatch(req); });
  REQUIRE(http::Send({.url = Url(*server, "/v1/metered/a")}).ok());
  REQUIRE(http::Send({.url = Url(*server, "/v1/metered/b")}).ok());
  REQUIRE(http::Send({.url = Url(*server, "/v1/unknown-path-xyz")}).ok());

  auto value = [](const std::string& route, const std::string& code) {
    for (const auto& family : metrics::Registry().Collect()) {
      if (family.name != "c2d_http_requests_total") continue;
      for (const auto& m : family.metric) {
        std::map<std::string, std::string> labels;
        for (const auto& l : m.label) labels[l.name] = l.value;
        if (labels["route"] == route && labels["code"] == code && labels["method"] == "GET") {
          return m.counter.value;
        }
      }
    }
    return 0.0;
  };
  CHECK(value("/v1/metered/{id}", "200") == 2);
  CHECK(value("unmatched", "404") >= 1);
  for (const auto& family : metrics::Registry().Collect()) {
    for (const auto& m : family.metric) {
      for (const auto& l : m.label) CHECK(l.value != "/v1/unknown-path-xyz");
    }
  }
}

}  // namespace
}  // namespace c2d
