#include "libs/cloud/openstack/errors.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace c2d::cloud::openstack {
namespace {

constexpr char kFaultPayload[] = "c2d.openstack/fault";
constexpr char kRequestIdPayload[] = "c2d.openstack/request-id";
constexpr size_t kMaxMessage = 500;

struct Parsed {
  std::string fault;
  std::string message;
};

// The fault's name and message, from whichever shape the service used.
Parsed Parse(const std::string& body) {
  Parsed p;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object()) {
    auto text = [](const nlohmann::json& o, const char* key) {
      auto it = o.find(key);
      return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (j.size() == 1 && j.begin().value().is_object()) {
      // {"itemNotFound": {...}}, {"error": {...}}, {"NeutronError": {...}}
      const nlohmann::json& inner = j.begin().value();
      p.fault = text(inner, "type");  // Neutron's type says more than its wrapper
      if (p.fault.empty())
        p.fault = j.begin().key() == "error" ? text(inner, "title") : j.begin().key();
      p.message = text(inner, "message");
      if (const std::string detail = text(inner, "detail"); !detail.empty() && p.message.empty()) {
        p.message = detail;
      }
    } else {
      p.fault = text(j, "type");  // Designate
      p.message = text(j, "message");
    }
  }
  if (p.message.empty()) {
    // Swift and proxies answer text or HTML: keep its first line.
    std::string first = body.substr(0, body.find('\n'));
    p.message = std::string(absl::StripAsciiWhitespace(first));
  }
  if (p.message.size() > kMaxMessage) p.message = p.message.substr(0, kMaxMessage) + "…";
  return p;
}

absl::StatusCode CodeFor(long status, const Parsed& p) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      // Nova answers a quota with a plain "forbidden" fault: its message is
      // the only sign, "Quota exceeded for cores: Requested 2, ...".
      return absl::StartsWithIgnoreCase(p.message, "quota exceeded")
                 ? absl::StatusCode::kResourceExhausted
                 : absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return p.fault == "OverQuota" ? absl::StatusCode::kResourceExhausted
                                    : absl::StatusCode::kAborted;
    case 413:
      return absl::StatusCode::kResourceExhausted;
    case 422:
      return absl::StatusCode::kDataLoss;
    case 429:
      return absl::StatusCode::kUnavailable;
    default:
      return status >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnknown;
  }
}

}  // namespace

absl::Status ErrorStatus(const http::Response& response, absl::string_view what) {
  const Parsed p = Parse(response.body);
  const std::string request_id = response.Header("x-openstack-request-id");
  std::string message = absl::StrCat(what, ": HTTP ", response.status);
  if (!p.message.empty()) absl::StrAppend(&message, ": ", p.message);
  if (!request_id.empty()) absl::StrAppend(&message, " (request ", request_id, ")");
  absl::Status s(CodeFor(response.status, p), message);
  if (!p.fault.empty()) s.SetPayload(kFaultPayload, absl::Cord(p.fault));
  if (!request_id.empty()) s.SetPayload(kRequestIdPayload, absl::Cord(request_id));
  return s;
}

std::string Fault(const absl::Status& status) {
  auto p = status.GetPayload(kFaultPayload);
  return p ? std::string(*p) : "";
}

std::string RequestId(const absl::Status& status) {
  auto p = status.GetPayload(kRequestIdPayload);
  return p ? std::string(*p) : "";
}

}  // namespace c2d::cloud::openstack
