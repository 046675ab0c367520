#include "libs/ingress/caddy.h"

#include "absl/strings/str_cat.h"
#include "libs/http/client.h"
#include "nlohmann/json.hpp"

namespace c2d::ingress {
namespace {

using nlohmann::json;

absl::Status AdminError(const std::string& what, const http::Response& r) {
  json j = json::parse(r.body, nullptr, false);
  std::string detail =
      j.is_object() && j.contains("error") ? j["error"].get<std::string>() : r.body;
  std::string msg = absl::StrCat(what, ": caddy answered ", r.status, ": ", detail);
  return r.status == 404   ? absl::NotFoundError(msg)
         : r.status >= 500 ? absl::UnavailableError(msg)
                           : absl::FailedPreconditionError(msg);
}

}  // namespace

Caddy::Caddy(std::string admin_url, std::string server, std::chrono::milliseconds timeout)
    : admin_url_(std::move(admin_url)), server_(std::move(server)), timeout_(timeout) {}

absl::Status Caddy::SetRoute(const std::string& hostname,
                             const std::vector<std::string>& upstreams) {
  if (upstreams.empty()) return RemoveRoute(hostname);
  json dials = json::array();
  for (const std::string& u : upstreams) dials.push_back({{"dial", u}});
  json route = {{"@id", RouteId(hostname)},
                {"match", json::array({{{"host", json::array({hostname})}}})},
                {"handle", json::array({{{"handler", "reverse_proxy"},
                                         {"upstreams", dials},
                                         // An upstream that refuses a connection (an instance
                                         // just stopped) is skipped: the request tries another.
                                         {"load_balancing",
                                          {{"selection_policy", {{"policy", "round_robin"}}},
                                           {"try_duration", "5s"},
                                           {"try_interval", "50ms"}}}}})},
                {"terminal", true}};
  const std::string what = absl::StrCat("route ", hostname);
  // Replace in place when the route exists ...
  auto patched = http::Send({.method = "PATCH",
                             .url = absl::StrCat(admin_url_, "/id/", RouteId(hostname)),
                             .headers = {{"Content-Type", "application/json"}},
                             .body = route.dump(),
                             .timeout = timeout_});
  if (!patched.ok()) return patched.status();
  if (patched->status == 200) return absl::OkStatus();
  if (patched->status != 404) return AdminError(what, *patched);
  // ... else insert it first, ahead of the fallback route.
  auto put = http::Send(
      {.method = "PUT",
       .url = absl::StrCat(admin_url_, "/config/apps/http/servers/", server_, "/routes/0"),
       .headers = {{"Content-Type", "application/json"}},
       .body = route.dump(),
       .timeout = timeout_});
  if (!put.ok()) return put.status();
  if (put->status != 200) return AdminError(what, *put);
  return absl::OkStatus();
}

absl::Status Caddy::RemoveRoute(const std::string& hostname) {
  auto r = http::Send({.method = "DELETE",
                       .url = absl::StrCat(admin_url_, "/id/", RouteId(hostname)),
                       .timeout = timeout_});
  if (!r.ok()) return r.status();
  if (r->status == 200 || r->status == 404) return absl::OkStatus();
  return AdminError(absl::StrCat("remove route ", hostname), *r);
}

absl::StatusOr<std::vector<std::string>> Caddy::Upstreams(const std::string& hostname) {
  auto r =
      http::Send({.url = absl::StrCat(admin_url_, "/id/", RouteId(hostname), "/handle/0/upstreams"),
                  .timeout = timeout_});
  if (!r.ok()) return r.status();
  if (r->status != 200) return AdminError(absl::StrCat("read route ", hostname), *r);
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_array()) return absl::InternalError("caddy: malformed upstream list");
  std::vector<std::string> out;
  for (const auto& u : j) out.push_back(u.value("dial", ""));
  return out;
}

}  // namespace c2d::ingress
