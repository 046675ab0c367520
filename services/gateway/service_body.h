#pragma once

// A service's REST body (POST /v1/projects/{id}/services, PATCH
// /v1/services/{id}) applied onto the service: every field typed, ranged and
// named in errors, the whole release spec checked as the deployer will.
// Pure: no I/O (fuzzed: tools/fuzz rest_bodies).

#include <string>

#include "absl/status/status.h"
#include "services/gateway/api.h"
#include "services/gateway/config.h"
#include "services/gateway/store.h"

namespace c2d::gateway {

// A new service as c2d makes it before its body applies (no ids yet).
Service ServiceDefaults();
// Applies `body` onto `s` (ServiceDefaults() and ids when `create`).
absl::Status ApplyServiceBody(const json& body, Service* s, bool create, const Config& config);
// Sets the service's repo_url: with credentials, masked, and the whole URL
// sealed in s->repo_url_sealed.
absl::Status SealRepoUrl(Service* s, const std::string& url, const Config& config);

}  // namespace c2d::gateway
