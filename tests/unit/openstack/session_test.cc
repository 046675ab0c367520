#include "libs/cloud/openstack/session.h"

#include <catch2/catch.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "libs/cloud/openstack/errors.h"
#include "tests/support/fake_openstack.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;
using testing::FakeOpenStack;

Credentials Password(const FakeOpenStack& os) {
  return {.auth_url = os.auth_url(),
          .username = "c2d",
          .password = "secret",
          .project_name = "c2d",
          .region = "RegionOne"};
}

const Options kFast{.timeout = std::chrono::milliseconds(5'000),
                    .retries = 3,
                    .backoff_base = std::chrono::milliseconds(10)};

TEST_CASE("a password token is requested once, scoped to the project, and reused", "[openstack]") {
  FakeOpenStack os;
  os.Answer("GET", "/compute/flavors", 200, FakeOpenStack::Sample("nova/flavors-list-resp.json"));
  Session s(Password(os), kFast);
  for (int i = 0; i < 5; ++i) {
    auto r = s.Call("compute", {.path = "/flavors"});
    REQUIRE(r.ok());
    CHECK(r->body["flavors"].size() > 0);
  }
  CHECK(s.authentications() == 1);
  auto auth = os.Requests("POST", "/identity/v3/auth/tokens");
  REQUIRE(auth.size() == 1);
  const json body = json::parse(auth[0].body);
  CHECK(body["auth"]["identity"]["methods"] == json{"password"});
  CHECK(body["auth"]["identity"]["password"]["user"]["name"] == "c2d");
  CHECK(body["auth"]["identity"]["password"]["user"]["domain"]["name"] == "Default");
  CHECK(body["auth"]["scope"]["project"]["name"] == "c2d");
  for (const auto& r : os.Requests("GET", "/compute")) CHECK(r.token == *s.Token());
  CHECK(*s.ProjectId() == FakeOpenStack::kProjectId);
}

TEST_CASE("an application credential authenticates without a scope", "[openstack]") {
  FakeOpenStack os;
  Session s({.auth_url = os.auth_url(),
             .application_credential_id = FakeOpenStack::kAppCredentialId,
             .application_credential_secret = "app-secret"},
            kFast);
  REQUIRE(s.Token().ok());
  const json body = json::parse(os.Requests("POST", "/identity")[0].body);
  CHECK(body["auth"]["identity"]["methods"] == json{"application_credential"});
  CHECK_FALSE(body["auth"].contains("scope"));
  CHECK_FALSE(absl::StrContains(body.dump(), "\"password\""));
}

TEST_CASE("wrong credentials are Unauthenticated with Keystone's words", "[openstack]") {
  FakeOpenStack os;
  Credentials c = Password(os);
  c.password = "wrong";
  Session s(c, kFast);
  auto t = s.Token();
  CHECK(absl::IsUnauthenticated(t.status()));
  CHECK_THAT(std::string(t.status().message()), Catch::Contains("requires authentication"));
  CHECK(os.Requests("POST").size() == 1);  // a refusal is not retried
}

TEST_CASE("a token near its expiry is renewed before use", "[openstack]") {
  FakeOpenStack os;
  os.SetTokenLifetime(absl::Milliseconds(400));  // renewed after half of it
  Session s(Password(os), kFast);
  const std::string first = *s.Token();
  CHECK(*s.Token() == first);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  const std::string second = *s.Token();
  CHECK(second != first);
  CHECK(s.authentications() == 2);
}

TEST_CASE("a revoked token is replaced once and the call made again", "[openstack]") {
  FakeOpenStack os;
  os.Answer("GET", "/network/v2.0/networks", 200, R"({"networks": []})");
  Session s(Password(os), kFast);
  REQUIRE(s.Call("network", {.path = "/v2.0/networks"}).ok());
  os.RevokeTokens();
  auto r = s.Call("network", {.path = "/v2.0/networks"});
  REQUIRE(r.ok());
  CHECK(s.authentications() == 2);
  CHECK(os.Requests("GET", "/network").size() == 3);  // ok, 401, ok

  SECTION("a service that keeps answering 401 gives Unauthenticated, not a loop") {
    os.FailNext("GET", "/network/v2.0/networks", 401, "", 5);
    auto again = s.Call("network", {.path = "/v2.0/networks"});
    CHECK(absl::IsUnauthenticated(again.status()));
    CHECK(os.Requests("GET", "/network").size() == 5);
  }
}

TEST_CASE("concurrent callers share one authentication", "[openstack]") {
  FakeOpenStack os;
  Session s(Password(os), kFast);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] { ok += s.Token().ok() ? 1 : 0; });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 8);
  CHECK(os.tokens_issued() == 1);
}

TEST_CASE("reads are retried on 5xx and 429, a POST never", "[openstack]") {
  FakeOpenStack os;
  os.Answer("GET", "/image/v2/images", 200, R"({"images": []})");
  os.Answer("POST", "/compute/servers", 202,
            FakeOpenStack::Sample("nova/v2.100-server-create-resp.json"));
  Session s(Password(os), kFast);
  os.FailNext("GET", "/image/v2/images", 503, "<html>Service Unavailable</html>", 2);
  os.FailNext("GET", "/image/v2/images", 429, "", 1, {{"Retry-After", "0"}});
  CHECK(s.Call("image", {.path = "/v2/images"}).ok());
  CHECK(os.Requests("GET", "/image").size() == 4);

  os.FailNext("POST", "/compute/servers", 500,
              R"({"computeFault": {"code": 500, "message": "Unexpected API Error."}})");
  auto made = s.Call("compute", {.method = "POST", .path = "/servers", .body = json::object()});
  CHECK(absl::IsUnavailable(made.status()));
  CHECK(Fault(made.status()) == "computeFault");
  CHECK(os.Requests("POST", "/compute").size() == 1);

  SECTION("retries end: the last answer is the error") {
    os.FailNext("GET", "/image/v2/images", 502, "bad gateway", 10);
    auto r = s.Call("image", {.path = "/v2/images"});
    CHECK(absl::IsUnavailable(r.status()));
    CHECK_THAT(std::string(r.status().message()), Catch::Contains("HTTP 502: bad gateway"));
    CHECK(os.Requests("GET", "/image").size() == 4 + 4);
  }
}

TEST_CASE("endpoints are chosen by type, interface and region", "[openstack]") {
  FakeOpenStack os;
  Credentials c = Password(os);
  {
    Session s(c, kFast);
    CHECK(*s.Endpoint("compute") == os.base() + "/compute");
  }
  c.interface = "internal";
  {
    Session s(c, kFast);
    CHECK(*s.Endpoint("volumev3") == os.base() + "/internal/volumev3");
  }
  c.interface = "public";
  c.region = "RegionTwo";
  {
    Session s(c, kFast);
    CHECK(*s.Endpoint("dns") == os.base() + "/two/dns");  // the trailing slash dropped
    auto none = s.Endpoint("baremetal");
    CHECK(absl::IsFailedPrecondition(none.status()));
    CHECK_THAT(std::string(none.status().message()),
               Catch::Contains("no public baremetal endpoint in region RegionTwo") &&
                   Catch::Contains("compute"));
  }
  c.region = "Elsewhere";
  Session s(c, kFast);
  CHECK(absl::IsFailedPrecondition(s.Endpoint("compute").status()));
}

TEST_CASE("OpenStack's error shapes become codes, faults and request ids", "[openstack]") {
  auto status = [](long code, std::string body) {
    http::Response r{.status = code, .body = std::move(body)};
    r.headers.emplace("x-openstack-request-id", "req-123");
    return ErrorStatus(r, "compute: POST /servers");
  };
  absl::Status quota = status(
      403,
      R"({"forbidden": {"message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances", "code": 403}})");
  CHECK(absl::IsResourceExhausted(quota));
  CHECK_THAT(std::string(quota.message()), Catch::Contains("Quota exceeded for instances"));
  CHECK(RequestId(quota) == "req-123");
  CHECK(absl::IsPermissionDenied(
      status(403, R"({"forbidden": {"message": "Policy doesn't allow it", "code": 403}})")));
  absl::Status neutron = status(
      409,
      R"({"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['port'].", "detail": ""}})");
  CHECK(absl::IsResourceExhausted(neutron));
  CHECK(Fault(neutron) == "OverQuota");
  absl::Status in_use = status(
      409,
      R"({"NeutronError": {"type": "NetworkInUse", "message": "Unable to complete operation on network x.", "detail": ""}})");
  CHECK(absl::IsAborted(in_use));
  CHECK(Fault(in_use) == "NetworkInUse");
  absl::Status cinder = status(
      413,
      R"({"overLimit": {"message": "VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded for quota 'volumes'.", "code": 413, "retryAfter": "0"}})");
  CHECK(absl::IsResourceExhausted(cinder));
  CHECK_THAT(std::string(cinder.message()), Catch::Contains("quota 'volumes'"));
  absl::Status missing = status(
      404, R"({"itemNotFound": {"message": "Instance x could not be found.", "code": 404}})");
  CHECK(absl::IsNotFound(missing));
  CHECK(Fault(missing) == "itemNotFound");
  absl::Status designate = status(
      404,
      R"({"code": 404, "type": "zone_not_found", "message": "Could not find Zone", "request_id": "req-1"})");
  CHECK(Fault(designate) == "zone_not_found");
  CHECK_THAT(std::string(designate.message()), Catch::Contains("Could not find Zone"));
  absl::Status keystone = status(
      401,
      R"({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})");
  CHECK(absl::IsUnauthenticated(keystone));
  CHECK(Fault(keystone) == "Unauthorized");
  absl::Status swift = status(503, "<html><h1>Service Unavailable</h1>\n<p>later</p></html>");
  CHECK(absl::IsUnavailable(swift));
  CHECK_THAT(std::string(swift.message()), Catch::Contains("Service Unavailable"));
  CHECK(absl::IsInvalidArgument(
      status(400, R"({"badRequest": {"message": "Invalid flavorRef provided.", "code": 400}})")));
  CHECK(status(418, "").code() == absl::StatusCode::kUnknown);
  const std::string huge(5000, 'x');
  CHECK(status(500, huge).message().size() < 700);
}

}  // namespace
}  // namespace c2d::cloud::openstack
