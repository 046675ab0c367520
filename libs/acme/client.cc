#include "libs/acme/client.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/acme/jws.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"

namespace c2d::acme {
namespace {

using nlohmann::json;

constexpr size_t kMaxPooledNonces = 16;
// Between polls when the CA sends no Retry-After.
constexpr absl::Duration kDefaultPoll = absl::Milliseconds(500);

std::string Str(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<absl::Time> TimeMember(const json& j, const char* name) {
  absl::Time t;
  std::string err;
  const std::string text = Str(j, name);
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return std::nullopt;
  return t;
}

absl::StatusOr<json> JsonBody(const http::Response& response, absl::string_view what) {
  json j = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::InternalError(absl::StrCat(what, ": the CA's answer is not a JSON object"));
  }
  return j;
}

Identifier ParseIdentifier(const json& j) {
  if (!j.is_object()) return Identifier{"", ""};
  return Identifier{Str(j, "type"), Str(j, "value")};
}

// A problem embedded in a resource ("error"), as a Status; OK when none.
absl::Status EmbeddedError(const json& j, absl::string_view what) {
  auto it = j.find("error");
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  return ProblemFromJson(*it, 0, what);
}

Order ParseOrder(const json& j, std::string url) {
  Order order;
  order.url = std::move(url);
  order.status = Str(j, "status");
  order.expires = TimeMember(j, "expires");
  if (auto it = j.find("identifiers"); it != j.end() && it->is_array()) {
    for (const json& id : *it) order.identifiers.push_back(ParseIdentifier(id));
  }
  if (auto it = j.find("authorizations"); it != j.end() && it->is_array()) {
    for (const json& a : *it) {
      if (a.is_string()) order.authorizations.push_back(a.get<std::string>());
    }
  }
  order.finalize = Str(j, "finalize");
  order.certificate = Str(j, "certificate");
  order.error = EmbeddedError(j, "ACME order");
  return order;
}

Challenge ParseChallenge(const json& j) {
  Challenge c;
  c.type = Str(j, "type");
  c.url = Str(j, "url");
  c.token = Str(j, "token");
  c.status = Str(j, "status");
  c.error = EmbeddedError(j, absl::StrCat("ACME ", c.type, " challenge"));
  return c;
}

Authorization ParseAuthorization(const json& j, std::string url) {
  Authorization a;
  a.url = std::move(url);
  if (auto it = j.find("identifier"); it != j.end()) a.identifier = ParseIdentifier(*it);
  a.status = Str(j, "status");
  if (auto it = j.find("wildcard"); it != j.end() && it->is_boolean()) a.wildcard = it->get<bool>();
  a.expires = TimeMember(j, "expires");
  if (auto it = j.find("challenges"); it != j.end() && it->is_array()) {
    for (const json& c : *it) {
      if (c.is_object()) a.challenges.push_back(ParseChallenge(c));
    }
  }
  return a;
}

// Order states in the order RFC 8555 §7.1.6 moves through them.
int OrderRank(absl::string_view status) {
  if (status == "pending") return 0;
  if (status == "ready") return 1;
  if (status == "processing") return 2;
  if (status == "valid") return 3;
  return -1;
}

// Waits before the next poll: the CA's Retry-After kept within
// [kMinPoll, kMaxPoll], never past the deadline.
void SleepBeforePoll(std::optional<absl::Duration> retry, absl::Time deadline) {
  const absl::Duration wait =
      std::clamp(retry.value_or(kDefaultPoll), Client::kMinPoll, Client::kMaxPoll);
  const absl::Duration left = deadline - absl::Now();
  if (left > absl::ZeroDuration()) absl::SleepFor(std::min(wait, left));
}

absl::Status AuthorizationFailure(const Authorization& authz) {
  const std::string prefix = absl::StrCat("authorization for ", authz.identifier.value, ": ");
  for (const Challenge& c : authz.challenges) {
    if (!c.error.ok()) return WithContext(c.error, prefix);
  }
  return absl::FailedPreconditionError(
      absl::StrCat(prefix, "the CA marked it ", authz.status, " without a reason"));
}

}  // namespace

const Challenge* Authorization::Find(absl::string_view type) const {
  for (const Challenge& c : challenges) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

Client::Client(Options options, crypto::EcKey account_key, std::string account_url)
    : options_(std::move(options)),
      account_key_(std::move(account_key)),
      account_url_(std::move(account_url)) {}

std::string Client::account_url() const {
  absl::MutexLock lock(&mu_);
  return account_url_;
}

// ---- Transport: directory, nonces, signed requests ----

absl::StatusOr<http::Response> Client::Send(http::Request request) {
  request.ca_file = options_.ca_file;
  request.timeout = options_.timeout;
  request.headers.emplace_back("User-Agent", options_.user_agent);
  C2D_ASSIGN_OR_RETURN(http::Response response, http::Send(request));
  KeepNonce(response);
  return response;
}

void Client::KeepNonce(const http::Response& response) {
  std::string nonce = response.Header("Replay-Nonce");
  if (nonce.empty()) return;
  absl::MutexLock lock(&mu_);
  nonces_.push_back(std::move(nonce));
  if (nonces_.size() > kMaxPooledNonces) nonces_.pop_front();  // the oldest may have expired
}

absl::StatusOr<std::string> Client::TakeNonce() {
  for (int attempt = 0; attempt < 3; ++attempt) {
    {
      absl::MutexLock lock(&mu_);
      if (!nonces_.empty()) {
        std::string nonce = std::move(nonces_.back());
        nonces_.pop_back();
        return nonce;
      }
    }
    // The pool is empty: HEAD newNonce refills it (another thread may take
    // that nonce first, hence the loop).
    C2D_ASSIGN_OR_RETURN(Directory dir, GetDirectory());
    http::Request request;
    request.method = "HEAD";
    request.url = dir.new_nonce;
    C2D_ASSIGN_OR_RETURN(http::Response response, Send(std::move(request)));
    if (response.status >= 400) return ProblemStatus(response, "ACME newNonce");
    if (response.Header("Replay-Nonce").empty()) {
      return absl::UnavailableError("ACME newNonce: the CA's answer has no Replay-Nonce");
    }
  }
  return absl::UnavailableError("ACME newNonce: no nonce left after 3 requests");
}

absl::StatusOr<Client::Directory> Client::GetDirectory() {
  {
    absl::MutexLock lock(&mu_);
    if (directory_) return *directory_;
  }
  http::Request request;
  request.url = options_.directory_url;
  C2D_ASSIGN_OR_RETURN(http::Response response, Send(std::move(request)));
  if (response.status >= 400) return ProblemStatus(response, "ACME directory");
  C2D_ASSIGN_OR_RETURN(json j, JsonBody(response, "ACME directory"));
  Directory dir{Str(j, "newNonce"), Str(j, "newAccount"), Str(j, "newOrder"),
                Str(j, "renewalInfo")};
  if (dir.new_nonce.empty() || dir.new_account.empty() || dir.new_order.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        options_.directory_url, " is not an ACME directory (no newNonce, newAccount or newOrder)"));
  }
  absl::MutexLock lock(&mu_);
  directory_ = dir;
  return dir;
}

absl::StatusOr<http::Response> Client::Post(const std::string& url, absl::string_view payload,
                                            Signer signer, absl::string_view what,
                                            absl::string_view accept) {
  std::string kid;
  if (signer == Signer::kKid) {
    kid = account_url();
    if (kid.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": no account URL yet (RegisterAccount first)"));
    }
  }
  for (int attempt = 0;; ++attempt) {
    C2D_ASSIGN_OR_RETURN(std::string nonce, TakeNonce());
    C2D_ASSIGN_OR_RETURN(std::string jws, SignJws(account_key_, kid, nonce, url, payload));
    http::Request request;
    request.method = "POST";
    request.url = url;
    request.body = std::move(jws);
    request.headers.emplace_back("Content-Type", "application/jose+json");
    if (!accept.empty()) request.headers.emplace_back("Accept", std::string(accept));
    C2D_ASSIGN_OR_RETURN(http::Response response, Send(std::move(request)));
    if (response.status < 400) return response;
    absl::Status problem = ProblemStatus(response, what);
    // badNonce is the CA asking for a retry: Send kept the fresh nonce this
    // very answer carried, and the next attempt takes it.
    if (ProblemType(problem) != kBadNonce || attempt >= kBadNonceRetries) return problem;
  }
}

// ---- Operations ----

absl::StatusOr<bool> Client::HasRenewalInfo() {
  C2D_ASSIGN_OR_RETURN(Directory dir, GetDirectory());
  return !dir.renewal_info.empty();
}

absl::StatusOr<std::string> Client::RegisterAccount(absl::string_view email) {
  C2D_ASSIGN_OR_RETURN(Directory dir, GetDirectory());
  json payload = {{"termsOfServiceAgreed", true}};
  if (!email.empty()) payload["contact"] = json::array({absl::StrCat("mailto:", email)});
  C2D_ASSIGN_OR_RETURN(http::Response response,
                       Post(dir.new_account, payload.dump(), Signer::kJwk, "ACME newAccount"));
  std::string location = response.Header("Location");
  if (location.empty()) {
    return absl::InternalError("ACME newAccount: the CA's answer has no Location");
  }
  C2D_ASSIGN_OR_RETURN(json account, JsonBody(response, "ACME newAccount"));
  if (const std::string status = Str(account, "status"); !status.empty() && status != "valid") {
    return absl::FailedPreconditionError(absl::StrCat("ACME newAccount: the account is ", status));
  }
  absl::MutexLock lock(&mu_);
  account_url_ = location;
  return location;
}

absl::StatusOr<Order> Client::NewOrder(const std::vector<Identifier>& identifiers,
                                       absl::string_view replaces_ari_id) {
  if (identifiers.empty()) return absl::InvalidArgumentError("ACME newOrder: no identifier");
  C2D_ASSIGN_OR_RETURN(Directory dir, GetDirectory());
  json ids = json::array();
  for (const Identifier& id : identifiers) ids.push_back({{"type", id.type}, {"value", id.value}});
  json payload = {{"identifiers", std::move(ids)}};
  // A CA without ARI may refuse an order member it does not know.
  if (!replaces_ari_id.empty() && !dir.renewal_info.empty()) payload["replaces"] = replaces_ari_id;
  C2D_ASSIGN_OR_RETURN(http::Response response,
                       Post(dir.new_order, payload.dump(), Signer::kKid, "ACME newOrder"));
  std::string location = response.Header("Location");
  if (location.empty()) {
    return absl::InternalError("ACME newOrder: the CA's answer has no Location");
  }
  C2D_ASSIGN_OR_RETURN(json order, JsonBody(response, "ACME newOrder"));
  return ParseOrder(order, std::move(location));
}

absl::StatusOr<Order> Client::FetchOrder(const std::string& url,
                                         std::optional<absl::Duration>* retry) {
  C2D_ASSIGN_OR_RETURN(http::Response response, Post(url, "", Signer::kKid, "ACME order"));
  if (retry != nullptr) *retry = ParseRetryAfter(response.Header("Retry-After"), absl::Now());
  C2D_ASSIGN_OR_RETURN(json order, JsonBody(response, "ACME order"));
  return ParseOrder(order, url);
}

absl::StatusOr<Order> Client::GetOrder(const std::string& url) { return FetchOrder(url, nullptr); }

absl::StatusOr<Authorization> Client::FetchAuthorization(const std::string& url,
                                                         std::optional<absl::Duration>* retry) {
  C2D_ASSIGN_OR_RETURN(http::Response response, Post(url, "", Signer::kKid, "ACME authorization"));
  if (retry != nullptr) *retry = ParseRetryAfter(response.Header("Retry-After"), absl::Now());
  C2D_ASSIGN_OR_RETURN(json authz, JsonBody(response, "ACME authorization"));
  return ParseAuthorization(authz, url);
}

absl::StatusOr<Authorization> Client::GetAuthorization(const std::string& url) {
  return FetchAuthorization(url, nullptr);
}

std::string Client::KeyAuthorization(absl::string_view token) const {
  return absl::StrCat(token, ".", account_key_.JwkThumbprint());
}

std::string Client::Dns01TxtValue(absl::string_view token) const {
  return crypto::Base64UrlNoPad(absl::HexStringToBytes(crypto::Sha256Hex(KeyAuthorization(token))));
}

absl::StatusOr<Challenge> Client::AcceptChallenge(const std::string& url) {
  C2D_ASSIGN_OR_RETURN(http::Response response, Post(url, "{}", Signer::kKid, "ACME challenge"));
  C2D_ASSIGN_OR_RETURN(json challenge, JsonBody(response, "ACME challenge"));
  return ParseChallenge(challenge);
}

absl::StatusOr<Authorization> Client::WaitAuthorization(const std::string& url,
                                                        absl::Time deadline) {
  while (true) {
    std::optional<absl::Duration> retry;
    C2D_ASSIGN_OR_RETURN(Authorization authz, FetchAuthorization(url, &retry));
    if (authz.status == "valid") return authz;
    if (authz.status == "invalid") return AuthorizationFailure(authz);
    if (authz.status != "pending") {
      return absl::FailedPreconditionError(
          absl::StrCat("authorization for ", authz.identifier.value, " is ", authz.status));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("authorization for ", authz.identifier.value,
                                                      " still pending at the deadline"));
    }
    SleepBeforePoll(retry, deadline);
  }
}

absl::StatusOr<Order> Client::WaitOrder(const std::string& url, absl::string_view wanted,
                                        absl::Time deadline) {
  const int wanted_rank = OrderRank(wanted);
  if (wanted_rank < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot wait for order status \"", wanted, "\""));
  }
  while (true) {
    std::optional<absl::Duration> retry;
    C2D_ASSIGN_OR_RETURN(Order order, FetchOrder(url, &retry));
    if (OrderRank(order.status) >= wanted_rank) return order;
    if (order.status == "invalid") {
      if (!order.error.ok()) return WithContext(order.error, absl::StrCat("order ", url, ": "));
      return absl::FailedPreconditionError(
          absl::StrCat("order ", url, " is invalid (an authorization failed or it expired)"));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("order ", url, " still ", order.status, " at the deadline"));
    }
    SleepBeforePoll(retry, deadline);
  }
}

absl::StatusOr<Order> Client::Finalize(const Order& order, absl::string_view csr_der) {
  if (order.finalize.empty()) return absl::InvalidArgumentError("ACME finalize: no finalize URL");
  json payload = {{"csr", crypto::Base64UrlNoPad(csr_der)}};
  C2D_ASSIGN_OR_RETURN(http::Response response,
                       Post(order.finalize, payload.dump(), Signer::kKid, "ACME finalize"));
  C2D_ASSIGN_OR_RETURN(json answer, JsonBody(response, "ACME finalize"));
  std::string location = response.Header("Location");
  return ParseOrder(answer, location.empty() ? order.url : std::move(location));
}

absl::StatusOr<std::string> Client::DownloadChain(const std::string& url) {
  C2D_ASSIGN_OR_RETURN(http::Response response, Post(url, "", Signer::kKid, "ACME certificate",
                                                     "application/pem-certificate-chain"));
  if (!absl::StrContains(response.body, "-----BEGIN CERTIFICATE-----")) {
    return absl::InternalError("ACME certificate: the CA's answer is not a PEM chain");
  }
  return std::move(response.body);
}

absl::StatusOr<SuggestedRenewal> Client::RenewalInfo(absl::string_view ari_cert_id) {
  C2D_ASSIGN_OR_RETURN(Directory dir, GetDirectory());
  if (dir.renewal_info.empty()) {
    return absl::UnimplementedError("the ACME CA offers no renewalInfo (RFC 9773)");
  }
  http::Request request;  // an unauthenticated GET (RFC 9773 §4.2)
  request.url = absl::StrCat(absl::StripSuffix(dir.renewal_info, "/"), "/", ari_cert_id);
  C2D_ASSIGN_OR_RETURN(http::Response response, Send(std::move(request)));
  if (response.status >= 400) return ProblemStatus(response, "ACME renewalInfo");
  C2D_ASSIGN_OR_RETURN(json info, JsonBody(response, "ACME renewalInfo"));
  auto window = info.find("suggestedWindow");
  std::optional<absl::Time> start, end;
  if (window != info.end() && window->is_object()) {
    start = TimeMember(*window, "start");
    end = TimeMember(*window, "end");
  }
  if (!start || !end) {
    return absl::InternalError("ACME renewalInfo: the CA's answer has no suggestedWindow");
  }
  return SuggestedRenewal{*start, *end, Str(info, "explanationURL"),
                          ParseRetryAfter(response.Header("Retry-After"), absl::Now())};
}

}  // namespace c2d::acme
