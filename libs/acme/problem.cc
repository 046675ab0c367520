#include "libs/acme/problem.h"

#include <cctype>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace c2d::acme {
namespace {

// What the error means, beside its code (see problem.h).
constexpr absl::string_view kTypePayload = "type.c2d.dev/acme-problem";
constexpr absl::string_view kRetryAfterPayload = "type.c2d.dev/acme-retry-after";

constexpr size_t kMaxBodyInMessage = 200;

absl::StatusCode CodeForHttpStatus(long http_status) {
  if (http_status >= 500) return absl::StatusCode::kUnavailable;
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kFailedPrecondition;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    default:
      return absl::StatusCode::kUnknown;
  }
}

// By the type's suffix; nullopt for types without a fixed meaning.
std::optional<absl::StatusCode> CodeForType(absl::string_view suffix, long http_status) {
  using C = absl::StatusCode;
  static const auto* const kCodes = new absl::flat_hash_map<absl::string_view, C>{
      {"serverInternal", C::kUnavailable},
      {"badNonce", C::kUnavailable},
      {"rateLimited", C::kResourceExhausted},
      {"accountDoesNotExist", C::kNotFound},
      {"badCSR", C::kInvalidArgument},
      {"badPublicKey", C::kInvalidArgument},
      {"badSignatureAlgorithm", C::kInvalidArgument},
      {"badRevocationReason", C::kInvalidArgument},
      {"rejectedIdentifier", C::kInvalidArgument},
      {"unsupportedIdentifier", C::kInvalidArgument},
      {"invalidContact", C::kInvalidArgument},
      {"unsupportedContact", C::kInvalidArgument},
      {"invalidProfile", C::kInvalidArgument},
      {"unauthorized", C::kFailedPrecondition},
      {"caa", C::kFailedPrecondition},
      {"dns", C::kFailedPrecondition},
      {"connection", C::kFailedPrecondition},
      {"incorrectResponse", C::kFailedPrecondition},
      {"tls", C::kFailedPrecondition},
      {"orderNotReady", C::kFailedPrecondition},
      {"agreementRequired", C::kFailedPrecondition},
      {"externalAccountRequired", C::kFailedPrecondition},
      {"userActionRequired", C::kFailedPrecondition},
      {"alreadyRevoked", C::kFailedPrecondition},
      {"alreadyReplaced", C::kFailedPrecondition},
  };
  // Pebble and Boulder answer "not found" as malformed with HTTP 404.
  if (suffix == "malformed") return http_status == 404 ? C::kNotFound : C::kInvalidArgument;
  auto it = kCodes->find(suffix);
  if (it == kCodes->end()) return std::nullopt;
  return it->second;
}

std::string StringMember(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "<identifier>: <detail> [<type suffix>]" for each subproblem.
std::string Subproblems(const nlohmann::json& problem) {
  auto it = problem.find("subproblems");
  if (it == problem.end() || !it->is_array()) return "";
  std::string out;
  for (const nlohmann::json& sub : *it) {
    if (!sub.is_object()) continue;
    std::string who;
    auto id = sub.find("identifier");
    if (id != sub.end() && id->is_object()) who = StringMember(*id, "value");
    const std::string full_type = StringMember(sub, "type");
    absl::string_view type = full_type;
    absl::ConsumePrefix(&type, kErrorPrefix);
    absl::StrAppend(&out, out.empty() ? "" : "; ", who.empty() ? "" : who + ": ",
                    StringMember(sub, "detail"), " [", type, "]");
  }
  return out;
}

absl::StatusCode CodeFor(const nlohmann::json& problem, absl::string_view type, long http_status) {
  if (http_status >= 500) return absl::StatusCode::kUnavailable;
  absl::string_view suffix = type;
  if (!absl::ConsumePrefix(&suffix, kErrorPrefix)) return CodeForHttpStatus(http_status);
  if (suffix == "compound") {
    auto subs = problem.find("subproblems");
    if (subs != problem.end() && subs->is_array() && !subs->empty() && subs->front().is_object()) {
      return CodeFor(subs->front(), StringMember(subs->front(), "type"), http_status);
    }
    return absl::StatusCode::kFailedPrecondition;
  }
  if (auto code = CodeForType(suffix, http_status)) return *code;
  return CodeForHttpStatus(http_status);
}

absl::Status WithPayloads(absl::StatusCode code, std::string message, absl::string_view type,
                          std::optional<absl::Duration> retry_after) {
  absl::Status status(code, message);
  if (!type.empty()) status.SetPayload(kTypePayload, absl::Cord(type));
  if (retry_after) {
    status.SetPayload(kRetryAfterPayload, absl::Cord(absl::FormatDuration(*retry_after)));
  }
  return status;
}

}  // namespace

absl::Status ProblemFromJson(const nlohmann::json& problem, long http_status,
                             absl::string_view what, std::optional<absl::Duration> retry_after) {
  if (!problem.is_object()) {
    return WithPayloads(CodeForHttpStatus(http_status),
                        absl::StrCat(what, ": the CA answered HTTP ", http_status), "",
                        retry_after);
  }
  if (http_status == 0) {
    auto it = problem.find("status");
    if (it != problem.end() && it->is_number_integer()) http_status = it->get<long>();
  }
  const std::string type = StringMember(problem, "type");
  absl::string_view short_type = type;
  absl::ConsumePrefix(&short_type, kErrorPrefix);
  std::string message = absl::StrCat(what, ": ", StringMember(problem, "detail"), " [",
                                     short_type.empty() ? "no problem type" : short_type);
  if (http_status != 0) absl::StrAppend(&message, ", HTTP ", http_status);
  absl::StrAppend(&message, "]");
  std::string subs = Subproblems(problem);
  if (!subs.empty()) absl::StrAppend(&message, "; subproblems: ", subs);
  return WithPayloads(CodeFor(problem, type, http_status), std::move(message), type, retry_after);
}

absl::Status ProblemStatus(const http::Response& response, absl::string_view what) {
  std::optional<absl::Duration> retry_after =
      ParseRetryAfter(response.Header("Retry-After"), absl::Now());
  nlohmann::json problem =
      nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (problem.is_object() && problem.contains("type")) {
    return ProblemFromJson(problem, response.status, what, retry_after);
  }
  // Not a problem document: an intermediary's page, or an empty body.
  std::string body = response.body.substr(0, kMaxBodyInMessage);
  std::string message = absl::StrCat(what, ": the CA answered HTTP ", response.status);
  if (!body.empty()) absl::StrAppend(&message, ": ", absl::StripAsciiWhitespace(body));
  return WithPayloads(CodeForHttpStatus(response.status), std::move(message), "", retry_after);
}

std::string ProblemType(const absl::Status& status) {
  auto type = status.GetPayload(kTypePayload);
  return type ? std::string(*type) : std::string();
}

std::optional<absl::Duration> RetryAfter(const absl::Status& status) {
  auto text = status.GetPayload(kRetryAfterPayload);
  absl::Duration d;
  if (!text || !absl::ParseDuration(std::string(*text), &d)) return std::nullopt;
  return d;
}

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  if (absl::ascii_isdigit(static_cast<unsigned char>(value.front()))) {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(value, &seconds) || seconds < 0) return std::nullopt;
    return absl::Seconds(seconds);
  }
  absl::Time when;
  std::string err;
  if (!absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", value, absl::UTCTimeZone(), &when, &err)) {
    return std::nullopt;
  }
  return when > now ? when - now : absl::ZeroDuration();
}

}  // namespace c2d::acme
