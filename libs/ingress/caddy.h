#pragma once

// The local ingress (DESIGN §1 point 1): a host Caddy, driven through its
// admin API. Each hostname has one route, identified by the @id
// "c2d-route-<hostname>", that balances round-robin over the healthy
// upstreams of a service's live deployment. Every change touches only that
// route (PATCH or insert by @id), so other services' traffic is never
// disturbed; Caddy swaps configurations gracefully, letting requests in
// flight finish on the old upstreams (but see below). Thread-safe.
//
// Known limit, measured with Caddy 2.6.2: every admin-API change reloads
// Caddy's servers, and requests arriving during the swap can be reset — about
// 1 in 200 while routes are inserted or deleted, and occasionally (1–2 in
// ~300) while a route's upstreams are replaced under steady traffic. So this
// client alone does not give zero-downtime switches; the deployer must change
// upstreams without reloads (e.g. Caddy's dynamic upstreams from SRV records)
// or keep old instances serving until the swap has settled.

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace c2d::ingress {

class Caddy {
 public:
  // `admin_url`: e.g. http://127.0.0.1:2019. `server`: the name of the HTTP
  // server whose routes c2d owns (tools/lib/caddy.sh names it "c2d").
  explicit Caddy(std::string admin_url, std::string server = "c2d",
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Routes `hostname` to `upstreams` ("127.0.0.1:port"), creating or
  // replacing its route. An empty list removes the route.
  absl::Status SetRoute(const std::string& hostname, const std::vector<std::string>& upstreams);
  // Removing a route that does not exist is not an error.
  absl::Status RemoveRoute(const std::string& hostname);
  // The upstreams `hostname` is routed to now; NotFound without a route.
  absl::StatusOr<std::vector<std::string>> Upstreams(const std::string& hostname);

  static std::string RouteId(const std::string& hostname) { return "c2d-route-" + hostname; }

 private:
  const std::string admin_url_;
  const std::string server_;
  const std::chrono::milliseconds timeout_;
};

}  // namespace c2d::ingress
