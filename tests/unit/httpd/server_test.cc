// The HTTP server the gateway sits on, driven over loopback by libcurl and
// by raw sockets (for what a well-behaved client never does: garbage,
// partial headers, pipelining): requests, limits, errors, shutdown and
// metrics. Streams and WebSockets: stream_test.cc; the router:
// router_test.cc.

#include "libs/httpd/server.h"

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "libs/http/client.h"
#include "libs/httpd/router.h"
#include "libs/metrics/metrics.h"
#include "tests/unit/httpd/support.h"

namespace c2d {
namespace {

using namespace httpd_test;

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

TEST_CASE("an io_handler answers on the I/O thread, or leaves the request to the workers") {
  std::atomic<int> handled{0};
  httpd::ServerOptions options;
  options.io_handler = [&](Request& req) -> std::optional<Response> {
    if (req.path != "/fast") return std::nullopt;
    req.route = "/fast";
    return Text("fast " + req.Query("n"));
  };
  auto server = StartServer(
      [&](Request& req) {
        ++handled;
        return Text("slow " + req.body);
      },
      options);
  for (int i = 0; i < 3; ++i) {
    auto fast = http::Send({.url = Url(*server, absl::StrCat("/fast?n=", i))});
    REQUIRE(fast.ok());
    CHECK(fast->status == 200);
    CHECK(fast->body == absl::StrCat("fast ", i));
    CHECK_FALSE(fast->Header("x-request-id").empty());
  }
  CHECK(handled == 0);
  // Declined: the handler gets the whole request, body included.
  auto slow = http::Send({.method = "POST", .url = Url(*server, "/other"), .body = "kept"});
  REQUIRE(slow.ok());
  CHECK(slow->body == "slow kept");
  CHECK(handled == 1);
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
    r.stream = [&](std::shared_ptr<httpd::Stream> s) {
      // Ends (and lets go) when told.
      s->OnClose([s] { s->End(); });
      s->Send("tick", [&](bool) { started = true; });
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
