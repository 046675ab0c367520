#pragma once

// The web dashboard (web/): a single-page app over the public REST API,
// built by `npm run build` into web/dist, compiled into the gateway
// (cmake/embed_dashboard.cmake) and served on the API's own origin:
//
//   GET /                 index.html (no-cache)
//   GET /assets/<file>    the content-hashed bundle and stylesheet
//                         (immutable; gzip when the client accepts it)
//
// Every answer carries a strict Content-Security-Policy: scripts, styles
// and connections from this origin only, no inline script, no frames.

#include <vector>

#include "absl/strings/string_view.h"
#include "libs/httpd/router.h"

namespace c2d::gateway {

struct DashboardFile {
  const char* name;  // as in web/dist, e.g. "app-0123456789ab.js"
  absl::string_view body;
};

// web/dist's files, by name (generated).
const std::vector<DashboardFile>& DashboardFiles();

// The Content-Security-Policy of the dashboard's pages.
inline constexpr char kDashboardCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

// Adds the dashboard's routes to `router`.
void AddDashboardRoutes(httpd::Router& router);

}  // namespace c2d::gateway
