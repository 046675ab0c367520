// libs/acme without a real CA: the JWS the client sends, problem documents
// as Status, Retry-After, and the client's protocol behaviour (badNonce
// retries, polling, renewal info) against a scripted CA on loopback
// (libs/httpd). The real CA is tests/integration/acme/acme_pebble_test.cc.

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/acme/client.h"
#include "libs/acme/jws.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "libs/httpd/server.h"
#include "tests/unit/es256_verify.h"

namespace c2d {
namespace {

using nlohmann::json;

crypto::EcKey NewKey() {
  auto key = crypto::EcKey::Generate();
  REQUIRE(key.ok());
  return *std::move(key);
}

// No Catch2 assertion here: the scripted CA calls these on its own threads,
// and Catch2 v2 assertions are for the test's thread only.
std::string B64UrlDecode(const std::string& text) {
  std::string out;
  if (!absl::WebSafeBase64Unescape(text, &out)) return "<not base64url>";
  return out;
}

struct DecodedJws {
  json header;
  std::string payload;
  bool well_formed = false;  // exactly protected, payload and signature, all strings
  bool signature_ok = false;
};

DecodedJws Decode(const crypto::EcKey& key, const std::string& text) {
  DecodedJws out;
  json jws = json::parse(text, nullptr, false);
  if (!jws.is_object() || jws.size() != 3 || !jws.value("protected", json()).is_string() ||
      !jws.value("payload", json()).is_string() || !jws.value("signature", json()).is_string()) {
    return out;
  }
  const std::string prot = jws["protected"], payload = jws["payload"], sig = jws["signature"];
  out.header = json::parse(B64UrlDecode(prot), nullptr, false);
  out.payload = B64UrlDecode(payload);
  out.well_formed = out.header.is_object();
  out.signature_ok = testing::VerifiesEs256(key.pkey(), prot + "." + payload, B64UrlDecode(sig));
  return out;
}

http::Response ProblemResponse(long status, const json& problem, std::string retry_after = "") {
  http::Response r;
  r.status = status;
  r.headers.emplace("content-type", "application/problem+json");
  if (!retry_after.empty()) r.headers.emplace("retry-after", retry_after);
  r.body = problem.dump();
  return r;
}

// ---- JWS ----

TEST_CASE("a newAccount JWS carries alg nonce url and the jwk and verifies", "[acme]") {
  crypto::EcKey key = NewKey();
  auto text = acme::SignJws(key, "", "nonce-1", "https://ca.test/new-acct",
                            R"({"termsOfServiceAgreed":true})");
  REQUIRE(text.ok());
  DecodedJws jws = Decode(key, *text);
  REQUIRE(jws.well_formed);
  CHECK(jws.header == json{{"alg", "ES256"},
                           {"nonce", "nonce-1"},
                           {"url", "https://ca.test/new-acct"},
                           {"jwk", json::parse(key.PublicJwk())}});
  CHECK(jws.payload == R"({"termsOfServiceAgreed":true})");
  CHECK(jws.signature_ok);
}

TEST_CASE("a kid-signed POST-as-GET has an empty payload and no jwk", "[acme]") {
  crypto::EcKey key = NewKey();
  auto text = acme::SignJws(key, "https://ca.test/acct/7", "n2", "https://ca.test/order/1", "");
  REQUIRE(text.ok());
  CHECK(json::parse(*text).at("payload") == "");
  DecodedJws jws = Decode(key, *text);
  REQUIRE(jws.well_formed);
  CHECK(jws.header == json{{"alg", "ES256"},
                           {"nonce", "n2"},
                           {"url", "https://ca.test/order/1"},
                           {"kid", "https://ca.test/acct/7"}});
  CHECK(jws.payload.empty());
  CHECK(jws.signature_ok);
}

// ---- Problems ----

TEST_CASE("problem types choose the status code and travel as payload", "[acme]") {
  struct Case {
    const char* type;
    long http;
    absl::StatusCode code;
  };
  const std::string ns = "urn:ietf:params:acme:error:";
  for (const Case& c : std::vector<Case>{
           {"rateLimited", 429, absl::StatusCode::kResourceExhausted},
           {"rejectedIdentifier", 400, absl::StatusCode::kInvalidArgument},
           {"badCSR", 400, absl::StatusCode::kInvalidArgument},
           {"malformed", 400, absl::StatusCode::kInvalidArgument},
           {"malformed", 404, absl::StatusCode::kNotFound},
           {"unauthorized", 403, absl::StatusCode::kFailedPrecondition},
           {"dns", 400, absl::StatusCode::kFailedPrecondition},
           {"caa", 403, absl::StatusCode::kFailedPrecondition},
           {"connection", 400, absl::StatusCode::kFailedPrecondition},
           {"incorrectResponse", 400, absl::StatusCode::kFailedPrecondition},
           {"orderNotReady", 403, absl::StatusCode::kFailedPrecondition},
           {"accountDoesNotExist", 400, absl::StatusCode::kNotFound},
           {"badNonce", 400, absl::StatusCode::kUnavailable},
           {"serverInternal", 500, absl::StatusCode::kUnavailable},
           {"rejectedIdentifier", 503, absl::StatusCode::kUnavailable},  // any 5xx
           {"somethingNew", 403, absl::StatusCode::kPermissionDenied},   // by HTTP status
       }) {
    INFO(c.type << " " << c.http);
    absl::Status s = acme::ProblemStatus(
        ProblemResponse(c.http, {{"type", ns + c.type}, {"detail", "the CA's reason"}}),
        "ACME newOrder");
    CHECK(s.code() == c.code);
    CHECK(acme::ProblemType(s) == ns + c.type);
    CHECK(absl::StrContains(s.message(), "ACME newOrder: the CA's reason"));
    CHECK(absl::StrContains(s.message(), c.type));
  }
}

TEST_CASE("a problem keeps the CA's detail and subproblems for users", "[acme]") {
  json problem = {{"type", "urn:ietf:params:acme:error:compound"},
                  {"detail", "Some identifiers were rejected"},
                  {"subproblems",
                   {{{"type", "urn:ietf:params:acme:error:rejectedIdentifier"},
                     {"detail", "Domain name contains an invalid character"},
                     {"identifier", {{"type", "dns"}, {"value", "a_b.example.org"}}}},
                    {{"type", "urn:ietf:params:acme:error:caa"},
                     {"detail", "CAA forbids issuance"},
                     {"identifier", {{"type", "dns"}, {"value", "c.example.org"}}}}}}};
  absl::Status s = acme::ProblemStatus(ProblemResponse(400, problem), "ACME newOrder");
  // compound takes its first subproblem's code.
  CHECK(absl::IsInvalidArgument(s));
  CHECK(acme::ProblemType(s) == "urn:ietf:params:acme:error:compound");
  CHECK(absl::StrContains(s.message(), "Some identifiers were rejected"));
  CHECK(
      absl::StrContains(s.message(), "a_b.example.org: Domain name contains an invalid character"));
  CHECK(absl::StrContains(s.message(), "c.example.org: CAA forbids issuance [caa]"));
}

TEST_CASE("answers that are not problem documents still map by HTTP status", "[acme]") {
  http::Response page;
  page.status = 502;
  page.body = "<html>Bad Gateway</html>";
  absl::Status s = acme::ProblemStatus(page, "ACME newNonce");
  CHECK(absl::IsUnavailable(s));
  CHECK(acme::ProblemType(s).empty());
  CHECK(absl::StrContains(s.message(), "502"));
  page.status = 404;
  page.body.clear();
  CHECK(absl::IsNotFound(acme::ProblemStatus(page, "x")));
  // Statuses from elsewhere carry no ACME meaning.
  CHECK(acme::ProblemType(absl::UnavailableError("x")).empty());
  CHECK_FALSE(acme::RetryAfter(absl::UnavailableError("x")).has_value());
}

TEST_CASE("an embedded problem uses its own status member", "[acme]") {
  json error = {{"type", "urn:ietf:params:acme:error:unauthorized"},
                {"detail", "key authorization mismatch"},
                {"status", 403}};
  absl::Status s = acme::ProblemFromJson(error, 0, "ACME http-01 challenge");
  CHECK(absl::IsFailedPrecondition(s));
  CHECK(absl::StrContains(s.message(), "HTTP 403"));
  absl::Status wrapped = c2d::WithContext(s, "authorization for a.example: ");
  CHECK(wrapped.code() == s.code());
  CHECK(acme::ProblemType(wrapped) == acme::ProblemType(s));
  CHECK(absl::StartsWith(wrapped.message(), "authorization for a.example: ACME http-01"));
}

TEST_CASE("Retry-After is read as seconds or as an HTTP date", "[acme]") {
  const absl::Time now = absl::FromUnixSeconds(1445412480);  // Wed, 21 Oct 2015 07:28:00 GMT
  CHECK(acme::ParseRetryAfter("120", now) == absl::Seconds(120));
  CHECK(acme::ParseRetryAfter(" 5 ", now) == absl::Seconds(5));
  CHECK(acme::ParseRetryAfter("0", now) == absl::ZeroDuration());
  CHECK(acme::ParseRetryAfter("Wed, 21 Oct 2015 07:29:30 GMT", now) == absl::Seconds(90));
  CHECK(acme::ParseRetryAfter("Wed, 21 Oct 2015 07:00:00 GMT", now) == absl::ZeroDuration());
  CHECK_FALSE(acme::ParseRetryAfter("", now).has_value());
  CHECK_FALSE(acme::ParseRetryAfter("soon", now).has_value());
  CHECK_FALSE(acme::ParseRetryAfter("-1", now).has_value());
  CHECK_FALSE(acme::ParseRetryAfter("12abc", now).has_value());

  absl::Status s = acme::ProblemStatus(
      ProblemResponse(429, {{"type", std::string(acme::kRateLimited)}, {"detail", "slow down"}},
                      "3600"),
      "ACME newOrder");
  CHECK(absl::IsResourceExhausted(s));
  CHECK(acme::RetryAfter(s) == absl::Hours(1));
}

// ---- The client against a scripted CA ----

// A CA on loopback that answers what each test scripts. Handlers run on
// the server's worker threads; routes run under mu_, and what they saw is
// kept for the test's thread to check afterwards (Requests()).
class FakeCa {
 public:
  using Route = std::function<httpd::Response(const DecodedJws&)>;

  explicit FakeCa(bool offer_renewal_info = false) : renewal_info_(offer_renewal_info) {
    auto server = httpd::Server::Start({}, [this](httpd::Request& req) { return Handle(req); });
    REQUIRE(server.ok());
    server_ = *std::move(server);
    base_ = absl::StrCat("http://", server_->address());
  }

  acme::Options options() const {
    acme::Options o;
    o.directory_url = base_ + "/dir";
    o.timeout = std::chrono::milliseconds(5000);
    return o;
  }
  std::string url(absl::string_view path) const { return absl::StrCat(base_, path); }

  // Scripts POSTs to `path`; the JWS is checked against `key` first.
  void On(const std::string& path, Route route) {
    absl::MutexLock lock(&mu_);
    routes_[path] = std::move(route);
  }
  void SetKey(const crypto::EcKey* key) { key_ = key; }
  void SetRenewalInfo(httpd::Response r) {
    absl::MutexLock lock(&mu_);
    renewal_answer_ = std::move(r);
  }
  // Every signed request, in arrival order, or those to `path`.
  std::vector<DecodedJws> Requests(const std::string& path = "") {
    absl::MutexLock lock(&mu_);
    std::vector<DecodedJws> out;
    for (const auto& [p, jws] : requests_) {
      if (path.empty() || p == path) out.push_back(jws);
    }
    return out;
  }
  std::vector<std::string> nonces_used() {
    std::vector<std::string> out;
    for (const DecodedJws& jws : Requests()) out.push_back(jws.header.value("nonce", ""));
    return out;
  }
  // Signed requests that were malformed, badly signed or not
  // application/jose+json.
  int bad_requests() {
    absl::MutexLock lock(&mu_);
    return bad_requests_;
  }
  std::string NextNonce() { return absl::StrCat("nonce-", ++nonce_counter_); }

 private:
  httpd::Response Handle(httpd::Request& req) {
    httpd::Response r;
    if (req.path == "/dir") {
      json dir = {
          {"newNonce", url("/nonce")}, {"newAccount", url("/acct")}, {"newOrder", url("/order")}};
      if (renewal_info_) dir["renewalInfo"] = url("/ari/");
      r.body = dir.dump();
      return r;
    }
    r.headers.emplace_back("Replay-Nonce", NextNonce());
    if (req.path == "/nonce") return r;
    if (absl::StartsWith(req.path, "/ari/")) {
      absl::MutexLock lock(&mu_);
      return renewal_answer_;
    }
    DecodedJws jws = Decode(*key_, req.body);
    absl::MutexLock lock(&mu_);
    if (!jws.well_formed || !jws.signature_ok ||
        req.Header("Content-Type") != "application/jose+json" ||
        jws.header.value("url", "") != url(req.path)) {
      ++bad_requests_;
    }
    requests_.emplace_back(req.path, jws);
    auto it = routes_.find(req.path);
    if (it == routes_.end()) {
      r.status = 404;
      return r;
    }
    httpd::Response answer = it->second(jws);
    answer.headers.insert(answer.headers.end(), r.headers.begin(), r.headers.end());
    return answer;
  }

  const bool renewal_info_;
  std::unique_ptr<httpd::Server> server_;
  std::string base_;
  const crypto::EcKey* key_ = nullptr;
  std::atomic<int> nonce_counter_{0};
  absl::Mutex mu_;
  std::map<std::string, Route> routes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, DecodedJws>> requests_ ABSL_GUARDED_BY(mu_);
  int bad_requests_ ABSL_GUARDED_BY(mu_) = 0;
  httpd::Response renewal_answer_ ABSL_GUARDED_BY(mu_);
};

httpd::Response Json(int status, const json& body,
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
  httpd::Response r;
  r.status = status;
  r.headers = std::move(headers);
  r.body = body.dump();
  return r;
}

httpd::Response BadNonce(FakeCa& ca, std::string* fresh) {
  *fresh = ca.NextNonce();
  return Json(400, {{"type", std::string(acme::kBadNonce)}, {"detail", "JWS has an invalid nonce"}},
              {{"Content-Type", "application/problem+json"}, {"Replay-Nonce", *fresh}});
}

TEST_CASE("badNonce answers are retried with the nonce they carried", "[acme]") {
  FakeCa ca;
  crypto::EcKey key = NewKey();
  ca.SetKey(&key);
  std::vector<std::string> fresh_nonces;
  int refusals = 3;
  ca.On("/acct", [&](const DecodedJws&) {
    if (refusals-- > 0) {
      std::string fresh;
      httpd::Response r = BadNonce(ca, &fresh);
      fresh_nonces.push_back(fresh);
      return r;
    }
    return Json(201, {{"status", "valid"}}, {{"Location", ca.url("/acct/1")}});
  });
  acme::Client client(ca.options(), key);
  auto kid = client.RegisterAccount("ops@example.org");
  REQUIRE(kid.ok());
  CHECK(*kid == ca.url("/acct/1"));
  CHECK(client.account_url() == *kid);
  // Four attempts: each retry signed with the nonce the refusal carried.
  std::vector<std::string> used = ca.nonces_used();
  REQUIRE(used.size() == 4);
  CHECK(std::vector<std::string>(used.begin() + 1, used.end()) == fresh_nonces);
  CHECK(ca.bad_requests() == 0);
  for (const DecodedJws& jws : ca.Requests("/acct")) {
    CHECK(jws.header.contains("jwk"));
    CHECK_FALSE(jws.header.contains("kid"));
    CHECK(json::parse(jws.payload) ==
          json{{"termsOfServiceAgreed", true}, {"contact", {"mailto:ops@example.org"}}});
  }
}

TEST_CASE("a CA that refuses every nonce gives Unavailable with the badNonce type", "[acme]") {
  FakeCa ca;
  crypto::EcKey key = NewKey();
  ca.SetKey(&key);
  ca.On("/order", [&](const DecodedJws&) {
    std::string fresh;
    return BadNonce(ca, &fresh);
  });
  acme::Client client(ca.options(), key, ca.url("/acct/1"));
  auto order = client.NewOrder({{"dns", "a.example.org"}});
  CHECK(absl::IsUnavailable(order.status()));
  CHECK(acme::ProblemType(order.status()) == acme::kBadNonce);
  CHECK(ca.nonces_used().size() == 1 + acme::kBadNonceRetries);
}

TEST_CASE("a rate-limited order is ResourceExhausted with the CA's Retry-After", "[acme]") {
  FakeCa ca;
  crypto::EcKey key = NewKey();
  ca.SetKey(&key);
  ca.On("/order", [&](const DecodedJws&) {
    return Json(429,
                {{"type", std::string(acme::kRateLimited)},
                 {"detail", "too many certificates already issued for example.org"}},
                {{"Content-Type", "application/problem+json"}, {"Retry-After", "86400"}});
  });
  acme::Client client(ca.options(), key, ca.url("/acct/1"));
  auto order = client.NewOrder({{"dns", "a.example.org"}});
  CHECK(absl::IsResourceExhausted(order.status()));
  CHECK(acme::ProblemType(order.status()) == acme::kRateLimited);
  CHECK(acme::RetryAfter(order.status()) == absl::Hours(24));
  CHECK(absl::StrContains(order.status().message(), "too many certificates"));
}

TEST_CASE("orders and authorizations parse and kid-signed calls need an account", "[acme]") {
  FakeCa ca;
  crypto::EcKey key = NewKey();
  ca.SetKey(&key);
  ca.On("/order", [&](const DecodedJws&) {
    return Json(201,
                {{"status", "pending"},
                 {"expires", "2030-01-02T03:04:05Z"},
                 {"identifiers", {{{"type", "dns"}, {"value", "*.example.org"}}}},
                 {"authorizations", {ca.url("/authz/1")}},
                 {"finalize", ca.url("/finalize/1")}},
                {{"Location", ca.url("/order/1")}});
  });
  ca.On("/authz/1", [&](const DecodedJws&) {
    return Json(200, {{"status", "pending"},
                      {"identifier", {{"type", "dns"}, {"value", "example.org"}}},
                      {"wildcard", true},
                      {"challenges",
                       {{{"type", "dns-01"},
                         {"url", ca.url("/chall/1")},
                         {"token", "tok"},
                         {"status", "pending"}}}}});
  });
  acme::Client client(ca.options(), key, ca.url("/acct/1"));
  auto order = client.NewOrder({{"dns", "*.example.org"}}, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
  REQUIRE(order.ok());
  CHECK(order->url == ca.url("/order/1"));
  CHECK(order->status == "pending");
  CHECK(order->expires ==
        absl::FromCivil(absl::CivilSecond(2030, 1, 2, 3, 4, 5), absl::UTCTimeZone()));
  CHECK(order->identifiers == std::vector<acme::Identifier>{{"dns", "*.example.org"}});
  CHECK(order->authorizations == std::vector<std::string>{ca.url("/authz/1")});
  CHECK(order->finalize == ca.url("/finalize/1"));
  CHECK(order->error.ok());
  REQUIRE(ca.Requests("/order").size() == 1);
  const DecodedJws sent = ca.Requests("/order")[0];
  CHECK(sent.header.at("kid") == ca.url("/acct/1"));
  CHECK_FALSE(sent.header.contains("jwk"));
  CHECK_FALSE(json::parse(sent.payload).contains("replaces"));  // no ARI at this CA
  CHECK(json::parse(sent.payload).at("identifiers") ==
        json::parse(R"([{"type":"dns","value":"*.example.org"}])"));

  auto authz = client.GetAuthorization(ca.url("/authz/1"));
  REQUIRE(authz.ok());
  CHECK(authz->wildcard);
  CHECK(authz->identifier.value == "example.org");
  REQUIRE(authz->Find("dns-01") != nullptr);
  CHECK(authz->Find("dns-01")->token == "tok");
  CHECK(authz->Find("http-01") == nullptr);
  REQUIRE(ca.Requests("/authz/1").size() == 1);
  CHECK(ca.Requests("/authz/1")[0].payload.empty());  // POST-as-GET
  CHECK(ca.bad_requests() == 0);

  // Key authorization and the DNS-01 digest of it (RFC 8555 §8.1, §8.4).
  CHECK(client.KeyAuthorization("tok") == "tok." + key.JwkThumbprint());
  CHECK(client.Dns01TxtValue("tok") == crypto::Base64UrlNoPad(absl::HexStringToBytes(
                                           crypto::Sha256Hex("tok." + key.JwkThumbprint()))));
  CHECK(client.Dns01TxtValue("tok").size() == 43);

  acme::Client anonymous(ca.options(), key);
  CHECK(absl::IsFailedPrecondition(anonymous.GetOrder(ca.url("/order/1")).status()));
}

TEST_CASE("an invalid authorization fails with the challenge's problem", "[acme]") {
  FakeCa ca;
  crypto::EcKey key = NewKey();
  ca.SetKey(&key);
  ca.On("/authz/1", [&](const DecodedJws&) {
    return Json(200, {{"status", "invalid"},
                      {"identifier", {{"type", "dns"}, {"value", "bad.example.org"}}},
                      {"challenges",
                       {{{"type", "http-01"},
                         {"url", ca.url("/chall/1")},
                         {"token", "tok"},
                         {"status", "invalid"},
                         {"error",
                          {{"type", "urn:ietf:params:acme:error:unauthorized"},
                           {"detail", "The key authorization file did not match"},
                           {"status", 403}}}}}}});
  });
  acme::Client client(ca.options(), key, ca.url("/acct/1"));
  auto authz = client.WaitAuthorization(ca.url("/authz/1"), absl::Now() + absl::Seconds(5));
  CHECK(absl::IsFailedPrecondition(authz.status()));
  CHECK(acme::ProblemType(authz.status()) == "urn:ietf:params:acme:error:unauthorized");
  CHECK(absl::StrContains(authz.status().message(), "bad.example.org"));
  CHECK(absl::StrContains(authz.status().message(), "The key authorization file did not match"));
}

TEST_CASE("polling honours Retry-After within bounds and stops at the deadline", "[acme]") {
  FakeCa ca;
  crypto::EcKey key = NewKey();
  ca.SetKey(&key);
  std::atomic<int> polls{0};
  std::atomic<int> retry_after{0};
  ca.On("/order/1", [&](const DecodedJws&) {
    ++polls;
    return Json(200, {{"status", "processing"}},
                {{"Retry-After", absl::StrCat(retry_after.load())}});
  });
  acme::Client client(ca.options(), key, ca.url("/acct/1"));

  // Retry-After 0 still waits the 200 ms minimum: about 5 polls in a second.
  absl::Time start = absl::Now();
  auto order = client.WaitOrder(ca.url("/order/1"), "valid", start + absl::Seconds(1));
  CHECK(absl::IsDeadlineExceeded(order.status()));
  CHECK(polls >= 3);
  CHECK(polls <= 7);

  // Retry-After 60 is cut to 5 s, and never sleeps past the deadline.
  retry_after = 60;
  polls = 0;
  start = absl::Now();
  order = client.WaitOrder(ca.url("/order/1"), "valid", start + absl::Milliseconds(700));
  CHECK(absl::IsDeadlineExceeded(order.status()));
  CHECK(absl::Now() - start < absl::Seconds(3));
  CHECK(polls == 2);

  // A state past the one waited for counts.
  ca.On("/order/1", [&](const DecodedJws&) { return Json(200, {{"status", "valid"}}); });
  auto ready = client.WaitOrder(ca.url("/order/1"), "ready", absl::Now() + absl::Seconds(1));
  REQUIRE(ready.ok());
  CHECK(ready->status == "valid");
}

TEST_CASE("renewal info is read when the CA offers it and Unimplemented otherwise", "[acme]") {
  crypto::EcKey key = NewKey();
  {
    FakeCa ca(/*offer_renewal_info=*/true);
    ca.SetKey(&key);
    ca.SetRenewalInfo(Json(
        200,
        {{"suggestedWindow", {{"start", "2030-01-02T00:00:00Z"}, {"end", "2030-01-03T00:00:00Z"}}},
         {"explanationURL", "https://ca.test/why"}},
        {{"Retry-After", "21600"}}));
    ca.On("/order", [&](const DecodedJws&) {
      return Json(201, {{"status", "pending"}}, {{"Location", ca.url("/order/1")}});
    });
    acme::Client client(ca.options(), key, ca.url("/acct/1"));
    CHECK(*client.HasRenewalInfo());
    auto info = client.RenewalInfo("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    REQUIRE(info.ok());
    CHECK(info->window_start ==
          absl::FromCivil(absl::CivilSecond(2030, 1, 2, 0, 0, 0), absl::UTCTimeZone()));
    CHECK(info->window_end - info->window_start == absl::Hours(24));
    CHECK(info->explanation_url == "https://ca.test/why");
    CHECK(info->retry_after == absl::Hours(6));
    REQUIRE(client.NewOrder({{"dns", "a.example.org"}}, "prev.id").ok());
    REQUIRE(ca.Requests("/order").size() == 1);
    CHECK(json::parse(ca.Requests("/order")[0].payload).value("replaces", "") == "prev.id");
  }
  FakeCa plain;
  plain.SetKey(&key);
  acme::Client client(plain.options(), key, plain.url("/acct/1"));
  CHECK_FALSE(*client.HasRenewalInfo());
  CHECK(absl::IsUnimplemented(client.RenewalInfo("a.b").status()));
}

TEST_CASE("an unreachable CA is Unavailable", "[acme]") {
  acme::Options options;
  options.directory_url = "http://127.0.0.1:1/dir";
  options.timeout = std::chrono::milliseconds(2000);
  acme::Client client(options, NewKey());
  CHECK(absl::IsUnavailable(client.RegisterAccount("").status()));
}

}  // namespace
}  // namespace c2d
