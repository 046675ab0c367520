// How the REST API turns a status from a service into an error answer.

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "services/gateway/api.h"

namespace c2d::gateway {
namespace {

TEST_CASE("an error without a message still says what happened", "[gateway]") {
  httpd::Response r = FromStatus(absl::UnavailableError(""));
  CHECK(r.status == 503);
  auto j = nlohmann::json::parse(r.body);
  CHECK(j["error"]["code"] == "unavailable");
  CHECK(j["error"]["message"] == "unavailable (no detail given; try again in a moment)");
  // A message given is kept as it is.
  j = nlohmann::json::parse(FromStatus(absl::NotFoundError("no such service")).body);
  CHECK(j["error"]["message"] == "no such service");
}

}  // namespace
}  // namespace c2d::gateway
