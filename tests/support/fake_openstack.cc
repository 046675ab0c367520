#include "tests/support/fake_openstack.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace c2d::testing {
namespace {

using json = nlohmann::json;

constexpr const char* kTypes[] = {"identity", "compute",      "network", "volumev3",
                                  "image",    "object-store", "dns",     "placement"};

httpd::Response Json(int status, const json& body) {
  return {.status = status,
          .headers = {{"Content-Type", "application/json"}, {"X-Openstack-Request-Id", "req-fake"}},
          .body = body.dump()};
}

// Keystone's own 401 answer.
httpd::Response Unauthorized() {
  return Json(401, {{"error",
                     {{"code", 401},
                      {"title", "Unauthorized"},
                      {"message", "The request you have made requires authentication."}}}});
}

bool PasswordMatches(const json& auth) {
  const json& id = auth["identity"];
  if (id.value("methods", json::array()) == json{"application_credential"}) {
    const json& ac = id["application_credential"];
    return ac.value("id", "") == FakeOpenStack::kAppCredentialId &&
           ac.value("secret", "") == "app-secret";
  }
  const json user = id.value("/password/user"_json_pointer, json::object());
  const json project = auth.value("/scope/project"_json_pointer, json::object());
  const bool user_ok = user.value("name", "") == "c2d" && user.value("password", "") == "secret" &&
                       (user.value("/domain/name"_json_pointer, "") == "Default" ||
                        user.value("/domain/id"_json_pointer, "") == "default");
  const bool project_ok = project.value("id", "") == FakeOpenStack::kProjectId ||
                          (project.value("name", "") == "c2d" &&
                           (project.value("/domain/name"_json_pointer, "") == "Default" ||
                            project.value("/domain/id"_json_pointer, "") == "default"));
  return user_ok && project_ok;
}

}  // namespace

FakeOpenStack::FakeOpenStack() {
  auto s = httpd::Server::Start({.workers = 8}, [this](httpd::Request& r) { return Handle(r); });
  if (!s.ok()) throw std::runtime_error(s.status().ToString());
  server_ = std::move(*s);
}

FakeOpenStack::~FakeOpenStack() { server_->Shutdown(std::chrono::milliseconds(200)); }

std::string FakeOpenStack::base() const { return absl::StrCat("http://", server_->address()); }
std::string FakeOpenStack::auth_url() const { return base() + "/identity/v3"; }

std::string FakeOpenStack::Sample(const std::string& relative) {
  std::ifstream in(std::string(C2D_OPENSTACK_FIXTURES) + "/" + relative, std::ios::binary);
  if (!in) throw std::runtime_error("no sample " + relative);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<FakeOpenStack::Recorded> FakeOpenStack::Requests(const std::string& method,
                                                             const std::string& prefix) const {
  absl::MutexLock lock(&mu_);
  std::vector<Recorded> out;
  for (const Recorded& r : requests_) {
    if ((method.empty() || r.method == method) && absl::StartsWith(r.path, prefix)) {
      out.push_back(r);
    }
  }
  return out;
}

void FakeOpenStack::Answer(const std::string& method, const std::string& path, int status,
                           std::string body,
                           std::vector<std::pair<std::string, std::string>> headers) {
  absl::MutexLock lock(&mu_);
  answers_[method + " " + path] = {status, std::move(body), std::move(headers)};
}

void FakeOpenStack::FailNext(const std::string& method, const std::string& path, int status,
                             std::string body, int times,
                             std::vector<std::pair<std::string, std::string>> headers) {
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < times; ++i) failures_[method + " " + path].push_back({status, body, headers});
}

void FakeOpenStack::SetTokenLifetime(absl::Duration lifetime) {
  absl::MutexLock lock(&mu_);
  lifetime_ = lifetime;
}

void FakeOpenStack::RevokeTokens() {
  absl::MutexLock lock(&mu_);
  for (auto& [_, valid] : tokens_) valid = false;
}

int FakeOpenStack::tokens_issued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(tokens_.size());
}

json FakeOpenStack::Catalog() const {
  json catalog = json::array();
  for (const char* type : kTypes) {
    auto endpoint = [&](const char* interface, const char* region, const std::string& url) {
      return json{{"interface", interface},
                  {"region", region},
                  {"region_id", region},
                  {"url", url},
                  {"id", absl::StrCat(type, "-", interface)}};
    };
    catalog.push_back(
        {{"type", type},
         {"name", type},
         {"id", type},
         {"endpoints",
          {endpoint("public", "RegionOne", absl::StrCat(base(), "/", type)),
           endpoint("internal", "RegionOne", absl::StrCat(base(), "/internal/", type)),
           endpoint("public", "RegionTwo", absl::StrCat(base(), "/two/", type, "/"))}}});
  }
  return catalog;
}

httpd::Response FakeOpenStack::IssueToken(const httpd::Request& req) {
  json body = json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("auth") || !PasswordMatches(body["auth"])) {
    return Unauthorized();
  }
  // The official sample, with this server's catalog and times.
  json reply = json::parse(Sample("keystone/auth-password-project-scoped-response.json"));
  const absl::Time now = absl::Now();
  std::string token;
  {
    absl::MutexLock lock(&mu_);
    token = absl::StrCat("gAAAAAfake", tokens_.size());
    tokens_[token] = true;
    reply["token"]["expires_at"] =
        absl::FormatTime(absl::RFC3339_full, now + lifetime_, absl::UTCTimeZone());
  }
  reply["token"]["issued_at"] = absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone());
  reply["token"]["project"]["id"] = kProjectId;
  reply["token"]["catalog"] = Catalog();
  httpd::Response r = Json(201, reply);
  r.headers.emplace_back("X-Subject-Token", token);
  return r;
}

httpd::Response FakeOpenStack::Handle(httpd::Request& req) {
  const std::string key = req.method + " " + req.path;
  Scripted answer;
  bool found = false;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(
        {req.method, req.path, req.target, req.Header("x-auth-token"), req.body, req.headers});
    if (auto f = failures_.find(key); f != failures_.end() && !f->second.empty()) {
      answer = f->second.front();
      f->second.pop_front();
      found = true;
    }
  }
  if (!found && key == "POST /identity/v3/auth/tokens") return IssueToken(req);
  if (!found) {
    absl::MutexLock lock(&mu_);
    auto t = tokens_.find(req.Header("x-auth-token"));
    if (t == tokens_.end() || !t->second) return Unauthorized();
    auto a = answers_.find(key);
    if (a == answers_.end()) {
      return Json(404, {{"itemNotFound", {{"code", 404}, {"message", "no answer for " + key}}}});
    }
    answer = a->second;
  }
  httpd::Response r{.status = answer.status, .headers = answer.headers, .body = answer.body};
  r.headers.emplace_back("X-Openstack-Request-Id", "req-fake");
  if (!answer.body.empty() && answer.body.front() == '{') {
    r.headers.emplace_back("Content-Type", "application/json");
  }
  return r;
}

}  // namespace c2d::testing
