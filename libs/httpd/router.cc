#include "libs/httpd/router.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace c2d::httpd {
namespace {

// "/a/b" → {"a", "b"}; "/" → {""}; keeps empty segments so that "/a/" and
// "/a" stay different paths.
std::vector<absl::string_view> SplitPath(absl::string_view path) {
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return absl::StrSplit(path, '/');
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler) {
  Route route{std::move(method), std::move(pattern), {}, std::move(handler)};
  for (absl::string_view part : SplitPath(route.pattern)) {
    if (part.size() >= 2 && part.front() == '{' && part.back() == '}') {
      route.segments.push_back({std::string(part.substr(1, part.size() - 2)), true});
    } else {
      route.segments.push_back({std::string(part), false});
    }
  }
  for (Route& existing : routes_) {
    if (existing.method == route.method && existing.pattern == route.pattern) {
      existing.handler = std::move(route.handler);
      return;
    }
  }
  by_length_[route.segments.size()].push_back(routes_.size());
  routes_.push_back(std::move(route));
}

bool Router::Matches(const Route& route, const std::vector<absl::string_view>& parts) {
  for (size_t i = 0; i < parts.size(); ++i) {
    const Segment& s = route.segments[i];
    // A capture takes any non-empty segment.
    if (s.capture ? parts[i].empty() : s.text != parts[i]) return false;
  }
  return true;
}

bool Router::MoreSpecific(const Route& a, const Route& b) {
  for (size_t i = 0; i < a.segments.size(); ++i) {
    if (a.segments[i].capture != b.segments[i].capture) return !a.segments[i].capture;
  }
  return false;
}

Response Router::Dispatch(Request& req) const {
  const std::vector<absl::string_view> parts = SplitPath(req.path);
  const Route* best = nullptr;
  const Route* best_get = nullptr;  // for HEAD
  std::set<std::string> allowed;
  if (auto it = by_length_.find(parts.size()); it != by_length_.end()) {
    for (size_t index : it->second) {
      const Route& route = routes_[index];
      if (!Matches(route, parts)) continue;
      allowed.insert(route.method);
      if (route.method == req.method) {
        if (best == nullptr || MoreSpecific(route, *best)) best = &route;
      } else if (req.method == "HEAD" && route.method == "GET") {
        if (best_get == nullptr || MoreSpecific(route, *best_get)) best_get = &route;
      }
    }
  }
  if (best == nullptr) best = best_get;
  if (best == nullptr) {
    if (allowed.empty()) {
      return JsonError(404, "not_found", absl::StrCat("no route for ", req.path));
    }
    Response r = JsonError(405, "method_not_allowed",
                           absl::StrCat(req.method, " is not allowed on ", req.path));
    r.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
    return r;
  }
  req.params.clear();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (best->segments[i].capture) req.params[best->segments[i].text] = std::string(parts[i]);
  }
  req.route = best->pattern;
  return best->handler(req);
}

std::vector<std::pair<std::string, std::string>> Router::Routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(routes_.size());
  for (const Route& route : routes_) out.emplace_back(route.method, route.pattern);
  return out;
}

}  // namespace c2d::httpd
