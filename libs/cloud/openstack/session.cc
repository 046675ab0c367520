#include "libs/cloud/openstack/session.h"

#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "libs/cloud/openstack/errors.h"
#include "libs/common/status.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;

bool Idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE";
}

bool Retryable(const absl::StatusOr<http::Response>& r) {
  if (!r.ok()) return absl::IsUnavailable(r.status()) || absl::IsDeadlineExceeded(r.status());
  return r->status == 429 || r->status >= 500;
}

// Retry-After in seconds (the only form OpenStack services send), if any.
std::optional<absl::Duration> RetryAfter(const absl::StatusOr<http::Response>& r) {
  if (!r.ok()) return std::nullopt;
  int seconds = 0;
  if (!absl::SimpleAtoi(r->Header("retry-after"), &seconds) || seconds < 0) return std::nullopt;
  return std::min(absl::Seconds(seconds), Session::kMaxRetryAfter);
}

absl::Time ParseTime(const json& token, const char* key) {
  absl::Time t = absl::InfinitePast();
  std::string err;
  if (auto it = token.find(key); it != token.end() && it->is_string()) {
    if (!absl::ParseTime(absl::RFC3339_full, it->get<std::string>(), &t, &err)) {
      return absl::InfinitePast();
    }
  }
  return t;
}

json Domain(const std::string& id, const std::string& name) {
  return id.empty() ? json{{"name", name}} : json{{"id", id}};
}

}  // namespace

std::string Reply::Header(const std::string& name) const {
  auto it = headers.find(absl::AsciiStrToLower(name));
  return it == headers.end() ? "" : it->second;
}

Session::Session(Credentials credentials, Options options)
    : credentials_(std::move(credentials)), options_(options) {}

json Session::AuthRequest() const {
  const Credentials& c = credentials_;
  if (!c.application_credential_id.empty()) {
    return {{"auth",
             {{"identity",
               {{"methods", {"application_credential"}},
                {"application_credential",
                 {{"id", c.application_credential_id},
                  {"secret", c.application_credential_secret}}}}}}}};
  }
  json project = c.project_id.empty()
                     ? json{{"name", c.project_name},
                            {"domain", Domain(c.project_domain_id, c.project_domain_name)}}
                     : json{{"id", c.project_id}};
  return {{"auth",
           {{"identity",
             {{"methods", {"password"}},
              {"password",
               {{"user",
                 {{"name", c.username},
                  {"domain", Domain(c.user_domain_id, c.user_domain_name)},
                  {"password", c.password}}}}}}},
            {"scope", {{"project", project}}}}}};
}

absl::StatusOr<Session::Cached> Session::Authenticate() const {
  const std::string url =
      absl::StrCat(absl::StripSuffix(credentials_.auth_url, "/"), "/auth/tokens");
  C2D_ASSIGN_OR_RETURN(http::Response r,
                       SendWithRetries({.method = "POST",
                                        .url = url,
                                        .headers = {{"Content-Type", "application/json"}},
                                        .body = AuthRequest().dump(),
                                        .timeout = options_.timeout,
                                        .ca_file = credentials_.ca_file},
                                       /*repeatable=*/true));  // a second token harms nothing
  if (r.status != 201 && r.status != 200) return ErrorStatus(r, "identity: POST /auth/tokens");
  const absl::Time received = absl::Now();
  json body = json::parse(r.body, nullptr, false);
  Cached c;
  c.token = r.Header("x-subject-token");
  if (c.token.empty() || !body.is_object() || !body.contains("token")) {
    return absl::UnavailableError(
        absl::StrCat("identity: POST /auth/tokens answered ", r.status, " without a token"));
  }
  const json& token = body["token"];
  const absl::Time issued = ParseTime(token, "issued_at"), expires = ParseTime(token, "expires_at");
  // The lifetime Keystone gave, counted from now on this machine's clock.
  absl::Duration lifetime = expires - issued;
  if (issued == absl::InfinitePast() || expires == absl::InfinitePast() ||
      lifetime <= absl::ZeroDuration()) {
    lifetime = absl::Minutes(10);  // Keystone always says; a cautious guess otherwise
  }
  c.refresh_at = received + lifetime - std::min(kRefreshBefore, lifetime / 2);
  c.project_id = token.value("/project/id"_json_pointer, "");
  c.catalog = token.value("catalog", json::array());
  return c;
}

absl::StatusOr<Session::Cached> Session::Current() {
  {
    absl::MutexLock lock(&mu_);
    if (cached_ && absl::Now() < cached_->refresh_at) return *cached_;
  }
  absl::MutexLock auth(&auth_mu_);
  {
    absl::MutexLock lock(&mu_);  // made by the caller we waited for?
    if (cached_ && absl::Now() < cached_->refresh_at) return *cached_;
  }
  absl::StatusOr<Cached> fresh = Authenticate();
  absl::MutexLock lock(&mu_);
  ++authentications_;
  if (!fresh.ok()) return fresh.status();
  cached_ = *fresh;
  return *cached_;
}

void Session::Forget(const std::string& token) {
  absl::MutexLock lock(&mu_);
  if (cached_ && cached_->token == token) cached_.reset();
}

absl::StatusOr<std::string> Session::Token() {
  C2D_ASSIGN_OR_RETURN(Cached c, Current());
  return c.token;
}

absl::StatusOr<std::string> Session::ProjectId() {
  C2D_ASSIGN_OR_RETURN(Cached c, Current());
  return c.project_id;
}

int Session::authentications() const {
  absl::MutexLock lock(&mu_);
  return authentications_;
}

absl::StatusOr<std::string> Session::Endpoint(const std::string& service_type) {
  C2D_ASSIGN_OR_RETURN(Cached c, Current());
  std::vector<std::string> listed;
  for (const json& service : c.catalog) {
    const std::string type = service.value("type", "");
    listed.push_back(type);
    if (type != service_type) continue;
    for (const json& e : service.value("endpoints", json::array())) {
      if (e.value("interface", "") != credentials_.interface) continue;
      if (!credentials_.region.empty() && e.value("region_id", "") != credentials_.region &&
          e.value("region", "") != credentials_.region) {
        continue;
      }
      return std::string(absl::StripSuffix(e.value("url", ""), "/"));
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the OpenStack catalog has no ", credentials_.interface, " ", service_type, " endpoint",
      credentials_.region.empty() ? "" : absl::StrCat(" in region ", credentials_.region),
      "; it lists: ", absl::StrJoin(listed, ", ")));
}

absl::StatusOr<http::Response> Session::SendWithRetries(http::Request request,
                                                        bool repeatable) const {
  const int tries = repeatable || Idempotent(request.method) ? 1 + options_.retries : 1;
  absl::StatusOr<http::Response> r;
  for (int attempt = 0; attempt < tries; ++attempt) {
    if (attempt > 0) {
      const absl::Duration wait = RetryAfter(r).value_or(absl::FromChrono(options_.backoff_base) *
                                                         (int64_t{1} << (attempt - 1)));
      absl::SleepFor(wait);
    }
    r = http::Send(request);
    if (!Retryable(r)) break;
  }
  return r;
}

absl::StatusOr<Reply> Session::Call(const std::string& service_type, const CallRequest& call) {
  if (options_.before_call) C2D_RETURN_IF_ERROR(options_.before_call(service_type, call));
  absl::StatusOr<Reply> reply = Send(service_type, call);
  if (options_.after_call) C2D_RETURN_IF_ERROR(options_.after_call(service_type, call));
  return reply;
}

absl::StatusOr<Reply> Session::Send(const std::string& service_type, const CallRequest& call) {
  C2D_ASSIGN_OR_RETURN(std::string base, Endpoint(service_type));
  const bool absolute =
      absl::StartsWith(call.path, "http://") || absl::StartsWith(call.path, "https://");
  const std::string what = absl::StrCat(service_type, ": ", call.method, " ", call.path);
  for (int attempt = 0;; ++attempt) {
    C2D_ASSIGN_OR_RETURN(std::string token, Token());
    http::Request req{.method = call.method,
                      .url = absolute ? call.path : base + call.path,
                      .headers = call.headers,
                      .body = call.body ? call.body->dump() : call.raw_body,
                      .timeout = options_.timeout,
                      .ca_file = credentials_.ca_file};
    req.headers.emplace_back("X-Auth-Token", token);
    req.headers.emplace_back("Accept", "application/json");
    if (call.body) req.headers.emplace_back("Content-Type", "application/json");
    C2D_ASSIGN_OR_RETURN(http::Response r, SendWithRetries(std::move(req), false));
    if (r.status == 401 && attempt == 0) {
      Forget(token);  // revoked or expired early: one new token, one more try
      continue;
    }
    if (r.status >= 400) return ErrorStatus(r, what);
    Reply reply{.status = r.status, .raw = std::move(r.body), .headers = std::move(r.headers)};
    if (!reply.raw.empty() && call.parse_json) {
      reply.body = json::parse(reply.raw, nullptr, false);
    }
    if (reply.body.is_discarded()) reply.body = nullptr;
    return reply;
  }
}

}  // namespace c2d::cloud::openstack
