#include "services/gateway/dashboard.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace c2d::gateway {
namespace {

const DashboardFile* Find(absl::string_view name) {
  for (const DashboardFile& f : DashboardFiles()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

httpd::Response File(const DashboardFile& f, absl::string_view type, absl::string_view cache) {
  httpd::Response r;
  r.headers = {{"Content-Type", std::string(type)},        {"Cache-Control", std::string(cache)},
               {"Content-Security-Policy", kDashboardCsp}, {"X-Content-Type-Options", "nosniff"},
               {"Referrer-Policy", "no-referrer"},         {"X-Frame-Options", "DENY"}};
  r.body = std::string(f.body);
  return r;
}

httpd::Response Index(httpd::Request&) {
  const DashboardFile* f = Find("index.html");
  if (f == nullptr) {
    return httpd::JsonError(404, "not_found",
                            "this gateway was built without the dashboard (web/dist is empty)");
  }
  return File(*f, "text/html; charset=utf-8", "no-cache");
}

// Only the bundle and the stylesheet: not index.html, not the .gz twins
// (those go out as a Content-Encoding).
httpd::Response Asset(httpd::Request& req) {
  const std::string& name = req.params["file"];
  absl::string_view type;
  if (absl::EndsWith(name, ".js")) {
    type = "text/javascript; charset=utf-8";
  } else if (absl::EndsWith(name, ".css")) {
    type = "text/css; charset=utf-8";
  }
  const DashboardFile* f = type.empty() ? nullptr : Find(name);
  if (f == nullptr) {
    return httpd::JsonError(404, "not_found",
                            absl::StrCat("no dashboard file ", name.substr(0, 64)));
  }
  constexpr absl::string_view kForever = "public, max-age=31536000, immutable";
  const DashboardFile* gz = Find(absl::StrCat(name, ".gz"));
  if (gz != nullptr && absl::StrContains(req.Header("accept-encoding"), "gzip")) {
    httpd::Response r = File(*gz, type, kForever);
    r.headers.emplace_back("Content-Encoding", "gzip");
    r.headers.emplace_back("Vary", "Accept-Encoding");
    return r;
  }
  httpd::Response r = File(*f, type, kForever);
  if (gz != nullptr) r.headers.emplace_back("Vary", "Accept-Encoding");
  return r;
}

}  // namespace

void AddDashboardRoutes(httpd::Router& router) {
  router.Add("GET", "/", Index);
  router.Add("GET", "/assets/{file}", Asset);
}

}  // namespace c2d::gateway
