// The dashboard's routes on the gateway's router: the page and its assets,
// their security headers and caching, gzip, and what is not served.

#include "services/gateway/dashboard.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <regex>

#include "libs/httpd/router.h"

namespace c2d::gateway {
namespace {

std::string Header(const httpd::Response& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

httpd::Response Get(httpd::Router& router, const std::string& path,
                    const std::string& accept_encoding = "") {
  httpd::Request req;
  req.method = "GET";
  req.path = path;
  if (!accept_encoding.empty()) req.headers["accept-encoding"] = accept_encoding;
  return router.Dispatch(req);
}

std::string Gunzip(const std::string& in) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
  std::string out(in.size() * 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(inflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

TEST_CASE("dashboard: the page names its assets and every answer carries a strict CSP",
          "[dashboard]") {
  httpd::Router router;
  AddDashboardRoutes(router);
  httpd::Response page = Get(router, "/");
  REQUIRE(page.status == 200);
  CHECK(Header(page, "Content-Type") == "text/html; charset=utf-8");
  CHECK(Header(page, "Cache-Control") == "no-cache");
  const std::string csp = Header(page, "Content-Security-Policy");
  CHECK(csp.find("default-src 'none'") != std::string::npos);
  CHECK(csp.find("script-src 'self'") != std::string::npos);
  CHECK(csp.find("unsafe-inline") == std::string::npos);
  CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(Header(page, "X-Content-Type-Options") == "nosniff");
  // No inline script: every script is a file of this origin.
  CHECK(page.body.find("<script>") == std::string::npos);

  std::smatch m;
  REQUIRE(std::regex_search(page.body, m, std::regex(R"(/assets/(app-[0-9a-f]{12}\.js))")));
  const std::string js = m[1];
  REQUIRE(std::regex_search(page.body, m, std::regex(R"(/assets/(app-[0-9a-f]{12}\.css))")));
  const std::string css = m[1];

  httpd::Response plain = Get(router, "/assets/" + js);
  REQUIRE(plain.status == 200);
  CHECK(Header(plain, "Content-Type") == "text/javascript; charset=utf-8");
  CHECK(Header(plain, "Cache-Control") == "public, max-age=31536000, immutable");
  CHECK(Header(plain, "Content-Encoding").empty());
  CHECK(!Header(plain, "Content-Security-Policy").empty());
  httpd::Response zipped = Get(router, "/assets/" + js, "gzip, deflate, br");
  REQUIRE(zipped.status == 200);
  CHECK(Header(zipped, "Content-Encoding") == "gzip");
  CHECK(Header(zipped, "Vary") == "Accept-Encoding");
  CHECK(zipped.body.size() < plain.body.size());
  CHECK(Gunzip(zipped.body) == plain.body);

  httpd::Response style = Get(router, "/assets/" + css);
  REQUIRE(style.status == 200);
  CHECK(Header(style, "Content-Type") == "text/css; charset=utf-8");
}

TEST_CASE("dashboard: only the bundle and the stylesheet are served as assets", "[dashboard]") {
  httpd::Router router;
  AddDashboardRoutes(router);
  for (const char* path : {"/assets/index.html", "/assets/missing.js", "/assets/../gateway.cc",
                           "/assets/", "/assets/app.js.gz"}) {
    INFO(path);
    CHECK(Get(router, path).status == 404);
  }
  // A .gz twin exists for the bundle, and still is not served by its name.
  bool twin = false;
  for (const DashboardFile& f : DashboardFiles()) {
    const std::string name = f.name;
    if (name.size() > 6 && name.substr(name.size() - 6) == ".js.gz") {
      twin = true;
      CHECK(Get(router, "/assets/" + name).status == 404);
    }
  }
  CHECK(twin);
}

}  // namespace
}  // namespace c2d::gateway
