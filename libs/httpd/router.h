#pragma once

// Maps (method, path) to handlers for the REST gateway:
//
//   httpd::Router router;
//   router.Add("GET", "/v1/projects/{id}", [&](httpd::Request& req) {
//     return GetProject(req.params.at("id"));
//   });
//   auto server = httpd::Server::Start(options, [&](httpd::Request& req) {
//     return router.Dispatch(req);
//   });
//
// Add every route before the server starts: Dispatch may run on many threads
// at once and takes no lock, so the table must not change under it.

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "libs/httpd/message.h"

namespace c2d::httpd {

class Router {
 public:
  // pattern: "/v1/projects/{id}/services": literal segments and {name}
  // captures, each one whole segment. Where two patterns match a path, the
  // one with a literal at the first differing segment wins
  // ("/v1/projects/search" over "/v1/projects/{id}"). Adding the same
  // (method, pattern) twice replaces the handler.
  void Add(std::string method, std::string pattern, Handler handler);

  // Runs the matching route's handler with req.params and req.route filled.
  // No pattern matches the path: 404 {"error":{"code":"not_found",…}}. A
  // pattern matches but not for this method: 405
  // {"error":{"code":"method_not_allowed",…}} with an Allow header. HEAD
  // falls back to the GET route (the server then sends no body).
  Response Dispatch(Request& req) const;

  // Every (method, pattern) added, in the order added, for documentation checks.
  std::vector<std::pair<std::string, std::string>> Routes() const;

 private:
  struct Segment {
    std::string text;  // the literal, or the capture's name
    bool capture = false;
  };
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    Handler handler;
  };

  // Whether `route` matches the path's segments (as many as the pattern has).
  static bool Matches(const Route& route, const std::vector<absl::string_view>& parts);
  // True when `a` is more specific than `b` (both matching the same path).
  static bool MoreSpecific(const Route& a, const Route& b);

  std::vector<Route> routes_;
  // Indices into routes_ by segment count, so Dispatch compares only
  // patterns of the right length.
  absl::flat_hash_map<size_t, std::vector<size_t>> by_length_;
};

}  // namespace c2d::httpd
