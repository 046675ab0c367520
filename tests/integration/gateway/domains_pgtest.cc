// Custom domains over REST, on the real PowerDNS and ingress: the answer
// names the record to create; the certs sweep finds it (asking PowerDNS,
// where the "customer's" zone is made for the test), issues a certificate,
// and the deployer routes the name; another tenant cannot take or see it;
// bad hostnames are refused with a message and change nothing.

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/dns/pdns.h"
#include "libs/http/client.h"
#include "tests/integration/gateway/api_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Api;
using testing::RequireEnv;
using testing::ServiceBody;
using testing::WaitFor;

// The ingress's answer for `host` (plain HTTP): status, and body.
std::pair<long, std::string> ViaIngress(const std::string& host) {
  auto r = http::Send({.url = absl::StrCat("http://", RequireEnv("C2D_TEST_CADDY_HTTP"), "/"),
                       .headers = {{"Host", host}},
                       .timeout = 5s});
  if (!r.ok()) return {0, r.status().ToString()};
  return {r->status, r->body};
}

// A zone of the test PowerDNS standing for a customer's DNS provider.
struct CustomerZone {
  CustomerZone()
      : zone(absl::StrCat("c", absl::AsciiStrToLower(ids::New("x").substr(18)), ".test")),
        pdns({.api_url = RequireEnv("C2D_TEST_PDNS_API_URL"),
              .api_key = RequireEnv("C2D_TEST_PDNS_API_KEY")}) {
    REQUIRE(pdns.EnsureZone(zone + ".").ok());
  }
  void Cname(const std::string& name, const std::string& target) {
    REQUIRE(pdns.Replace(zone + ".",
                         {.name = name + ".", .type = "CNAME", .ttl = 1, .records = {target + "."}})
                .ok());
  }
  const std::string zone;
  dns::Pdns pdns;
};

TEST_CASE("a custom domain: the record to create, verified, issued, routed, and removed",
          "[gateway]") {
  Api api;
  const std::string& t = api.alice();
  auto sample = testing::SampleRepo("1.0.0");
  const std::string project = api.Call("POST", "/v1/projects", t, json{{"name", "dom"}}).body["id"];
  const std::string service = api.Call("POST", absl::StrCat("/v1/projects/", project, "/services"),
                                       t, ServiceBody("hello", sample->path()))
                                  .body["id"];
  auto started = api.Call("POST", "/v1/services/" + service + "/deployments", t, json::object());
  REQUIRE(started.status == 202);
  auto events = api.Events("/v1/deployments/" + started.body["id"].get<std::string>() + "/logs", t);
  REQUIRE(!events.empty());
  REQUIRE(events.back().data.value("state", "") == "live");

  CustomerZone customer;
  const std::string host = "shop." + customer.zone;
  const std::string domains = "/v1/services/" + service + "/domains";
  // Given in any case, with a trailing dot: stored as the name it is.
  auto added = api.Call("POST", domains, t, json{{"hostname", "Shop." + customer.zone + "."}});
  INFO(added.raw);
  REQUIRE(added.status == 201);
  const std::string id = added.body["id"];
  CHECK(added.body["hostname"] == host);
  CHECK(added.body["kind"] == "custom");
  CHECK(added.body["state"] == "pending_dns");
  CHECK(added.body["dns_record"] ==
        json({{"type", "CNAME"}, {"name", host}, {"value", "hello.dom.localhost"}}));
  CHECK_THAT(added.body.value("note", ""), Catch::Contains("CNAME " + host));
  CHECK(api.Call("POST", domains, t, json{{"hostname", host}}).status == 409);
  // Until the record is there, the reason is shown, and nothing is routed.
  auto due = [&] { api.deployer().db().Exec("UPDATE domains SET next_verification_at = now()"); };
  auto get = [&] { return api.Call("GET", "/v1/domains/" + id, t).body; };
  api.CertsSweep();
  CHECK(get()["state"] == "pending_dns");
  CHECK_THAT(get().value("error", ""), Catch::Contains("has no CNAME or A record"));
  customer.Cname(host, "elsewhere.example.org");
  due();
  api.CertsSweep();
  CHECK(get()["state"] == "pending_dns");
  CHECK_THAT(get().value("error", ""),
             Catch::Contains("is a CNAME to elsewhere.example.org, not to hello.dom.localhost"));
  CHECK(ViaIngress(host).first == 404);

  // The right record: verified, a certificate issued, and the name routed.
  customer.Cname(host, "hello.dom.localhost");
  due();
  json domain;
  CHECK(WaitFor(30s, [&] {
    api.CertsSweep();
    domain = get();
    return domain["state"] == "active";
  }));
  INFO(domain.dump());
  CHECK(domain["verified_at"].is_string());
  CHECK(domain["certificate_id"].is_string());
  CHECK(domain["error"].is_null());
  std::pair<long, std::string> answer;
  CHECK(WaitFor(15s, [&] { return (answer = ViaIngress(host)).first == 200; }));
  INFO(answer.second);
  // A name somebody else claimed first without proving it is theirs: refused
  // until its record points at this service, then taken over.
  const std::string& b = api.bob();
  const std::string theirs =
      api.Call("POST", "/v1/projects", b, json{{"name", "rival"}}).body["id"];
  const std::string their_service =
      api.Call("POST", absl::StrCat("/v1/projects/", theirs, "/services"), b,
               ServiceBody("web", sample->path()))
          .body["id"];
  const std::string www = "www." + customer.zone;
  auto squat =
      api.Call("POST", "/v1/services/" + their_service + "/domains", b, json{{"hostname", www}});
  REQUIRE(squat.status == 201);
  auto refused = api.Call("POST", domains, t, json{{"hostname", www}});
  CHECK(refused.status == 409);
  CHECK_THAT(refused.Error(), Catch::Contains("claimed by another service; if the name is yours"));
  customer.Cname(www, "hello.dom.localhost");
  CHECK(api.Call("POST", domains, t, json{{"hostname", www}}).status == 201);
  CHECK(api.Call("GET", "/v1/domains/" + squat.body["id"].get<std::string>(), b).status == 404);

  // The list has the default hostname beside them; that one cannot go.
  auto list = api.Call("GET", domains, t);
  REQUIRE(list.status == 200);
  REQUIRE(list.body["domains"].size() == 3);
  std::string default_id;
  for (const json& d : list.body["domains"]) {
    if (d["kind"] == "default") default_id = d["id"];
  }
  REQUIRE(!default_id.empty());
  CHECK(api.Call("DELETE", "/v1/domains/" + default_id, t).status == 409);

  // Another tenant can neither take a verified name nor see or delete the
  // domain, even with the record pointing at their service.
  customer.Cname(host, "web.rival.localhost");
  // (The live service's instances change beside: compare what domains touch.)
  auto domain_rows = [&] {
    auto all = api.Snapshot();
    return std::vector<std::string>{all["domains"], all["certificates"], all["custom_routes"],
                                    all["audit_log"]};
  };
  const auto before = domain_rows();
  auto stolen =
      api.Call("POST", "/v1/services/" + their_service + "/domains", b, json{{"hostname", host}});
  CHECK(stolen.status == 409);
  CHECK_THAT(stolen.Error(), Catch::Contains("claimed by another service"));
  CHECK(api.Call("GET", "/v1/domains/" + id, b).status == 404);
  CHECK(api.Call("DELETE", "/v1/domains/" + id, b).status == 404);
  CHECK(api.Call("GET", domains, b).status == 404);
  CHECK(domain_rows() == before);

  // Removed: no longer routed, and the name is free again.
  auto removed = api.Call("DELETE", "/v1/domains/" + id, t);
  CHECK(removed.status == 200);
  CHECK(api.Call("GET", "/v1/domains/" + id, t).status == 404);
  CHECK(WaitFor(15s, [&] { return ViaIngress(host).first == 404; }));
  CHECK(api.Call("POST", "/v1/services/" + their_service + "/domains", b, json{{"hostname", host}})
            .status == 201);
}

TEST_CASE("bad custom domains get a 400 or 409 saying what is wrong and change nothing",
          "[gateway]") {
  Api api;
  const std::string& t = api.alice();
  const std::string project = api.Call("POST", "/v1/projects", t, json{{"name", "bad"}}).body["id"];
  const std::string service = api.Call("POST", absl::StrCat("/v1/projects/", project, "/services"),
                                       t, ServiceBody("web", "https://git.example.com/o/web.git"))
                                  .body["id"];
  const std::string domains = "/v1/services/" + service + "/domains";
  const auto before = api.Snapshot();
  struct Bad {
    std::string body, says;
  };
  const std::vector<Bad> bad = {
      {R"({"hostname": "203.0.113.7"})", "is an IP address"},
      {R"({"hostname": "2001:db8::1"})", "is an IP address"},
      {json{{"hostname", std::string(190, 'a') + ".example.com"}}.dump(), "at most 200"},
      {json{{"hostname", std::string(64, 'a') + ".example.com"}}.dump(), "max 63"},
      {R"({"hostname": "*.example.com"})", "wildcard"},
      {R"({"hostname": "web.bad.localhost"})", "c2d's own domain"},
      {R"({"hostname": "localhost"})", "c2d's own domain"},
      {R"({"hostname": "intranet"})", "no dot"},
      {R"({"hostname": "shop_1.example.com"})", "the character '_'"},
      {R"({"hostname": "-shop.example.com"})", "hyphen"},
      {R"({"hostname": "shop..example.com"})", "empty label"},
      {R"({"hostname": "shop.example.123"})", "top-level domain"},
      {R"({"hostname": ""})", "required"},
      {R"({"hostname": 7})", "must be a string"},
      {R"({"hostname": "shop.example.com", "tls": true})", "unknown field"},
      {R"({"hostname": "shop.example.com")", "not valid JSON"},
  };
  for (const Bad& b : bad) {
    INFO(b.body);
    auto r = api.Call("POST", domains, t, b.body);
    CHECK(r.status == 400);
    CHECK_THAT(r.Error(), Catch::Contains(b.says));
  }
  CHECK(api.Snapshot() == before);

  // The per-service limit (3 in these tests) is a 409 to act on.
  for (int i = 0; i < 3; ++i) {
    CHECK(api.Call("POST", domains, t, json{{"hostname", absl::StrCat("s", i, ".example.com")}})
              .status == 201);
  }
  auto over = api.Call("POST", domains, t, json{{"hostname", "s3.example.com"}});
  CHECK(over.status == 409);
  CHECK_THAT(over.Error(), Catch::Contains("at most 3 custom domains"));
  // A worker serves no HTTP.
  const json worker = {{"name", "jobs"},
                       {"type", "worker"},
                       {"source", {{"repo_url", "https://git.example.com/o/jobs.git"}}}};
  auto made = api.Call("POST", absl::StrCat("/v1/projects/", project, "/services"), t, worker);
  REQUIRE(made.status == 201);
  const std::string worker_id = made.body["id"];
  auto refused = api.Call("POST", "/v1/services/" + worker_id + "/domains", t,
                          json{{"hostname", "jobs.example.com"}});
  CHECK(refused.status == 409);
  CHECK_THAT(refused.Error(), Catch::Contains("is a worker"));
  // Ids that are not domain ids, or nobody's.
  CHECK(api.Call("GET", "/v1/domains/nope", t).status == 404);
  CHECK(api.Call("DELETE", "/v1/domains/" + ids::New("dom"), t).status == 404);
}

}  // namespace
}  // namespace c2d
