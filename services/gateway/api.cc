#include "services/gateway/api.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/common/log.h"
#include "libs/rpc/status.h"

namespace c2d::gateway {

httpd::Response Json(int status, const json& body) {
  httpd::Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  r.body += '\n';
  return r;
}

httpd::Response Error(int status, const std::string& code, const std::string& message,
                      const std::string& field) {
  json e = {{"code", code}, {"message", message}};
  if (!field.empty()) e["field"] = field;
  return Json(status, {{"error", e}});
}

absl::Status FieldError(const std::string& field, const std::string& why) {
  return rpc::InvalidField(field, why);
}

httpd::Response FromStatus(const absl::Status& s) {
  std::string message(s.message());
  // A peer's error without a message (gRPC's own UNAVAILABLE can be one)
  // still says what happened.
  if (message.empty()) {
    message = absl::StrCat(absl::AsciiStrToLower(absl::StatusCodeToString(s.code())),
                           " (no detail given; try again in a moment)");
  }
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: {
      std::optional<std::string> field = rpc::ErrorField(s);
      if (!field) return Error(400, "invalid_argument", message);
      // Another service's spec is the REST body: "spec.run.port" is "run.port".
      if (absl::StartsWith(*field, "spec.")) {
        if (absl::StartsWith(message, *field)) message.erase(0, 5);
        field->erase(0, 5);
      }
      return Error(400, "invalid_argument", message, *field);
    }
    case absl::StatusCode::kUnauthenticated:
      return Error(401, "unauthenticated", message);
    case absl::StatusCode::kPermissionDenied:
      return Error(403, "permission_denied", message);
    case absl::StatusCode::kNotFound:
      return Error(404, "not_found", message);
    case absl::StatusCode::kAlreadyExists:
      return Error(409, "already_exists", message);
    case absl::StatusCode::kFailedPrecondition:
      return Error(409, "failed_precondition", message);
    case absl::StatusCode::kAborted:
      return Error(409, "aborted", message);
    case absl::StatusCode::kResourceExhausted: {
      httpd::Response r = Error(429, "rate_limited", message);
      r.headers.emplace_back("Retry-After", "5");
      return r;
    }
    case absl::StatusCode::kUnimplemented:
      return Error(501, "not_implemented", message);
    case absl::StatusCode::kUnavailable:
      return Error(503, "unavailable", message);
    case absl::StatusCode::kDeadlineExceeded:
      return Error(504, "deadline_exceeded", message);
    default:
      log::Error("internal error", {{"error", s.ToString()}});
      return Error(500, "internal", "internal error; the gateway's log has the details");
  }
}

absl::StatusOr<json> ParseObject(const std::string& body,
                                 std::initializer_list<const char*> allowed, bool empty_ok) {
  if (body.empty() && empty_ok) return json::object();
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("the body is not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("the body must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* a : allowed) known |= key == a;
    if (!known) return FieldError(key, "unknown field");
  }
  return j;
}

absl::StatusOr<json> SubObject(const json& o, const char* key,
                               std::initializer_list<const char*> allowed) {
  if (!o.contains(key) || o[key].is_null()) return json::object();
  const json& sub = o[key];
  if (!sub.is_object()) return FieldError(key, "must be an object");
  for (const auto& [k, value] : sub.items()) {
    bool known = false;
    for (const char* a : allowed) known |= k == a;
    if (!known) return FieldError(absl::StrCat(key, ".", k), "unknown field");
  }
  return sub;
}

absl::Status GetString(const json& o, const char* key, const std::string& prefix, std::string* out,
                       size_t max_len) {
  if (!o.contains(key) || o[key].is_null()) return absl::OkStatus();
  if (!o[key].is_string()) return FieldError(prefix + key, "must be a string");
  std::string v = o[key].get<std::string>();
  if (v.size() > max_len) {
    return FieldError(prefix + key, absl::StrCat("must be at most ", max_len, " characters"));
  }
  *out = std::move(v);
  return absl::OkStatus();
}

absl::Status GetInt(const json& o, const char* key, const std::string& prefix, int lo, int hi,
                    int* out) {
  if (!o.contains(key) || o[key].is_null()) return absl::OkStatus();
  const json& v = o[key];
  if (!v.is_number_integer()) return FieldError(prefix + key, "must be an integer");
  int64_t n = v.get<int64_t>();
  if (n < lo || n > hi) return FieldError(prefix + key, absl::StrCat("must be ", lo, "-", hi));
  *out = static_cast<int>(n);
  return absl::OkStatus();
}

absl::Status GetBool(const json& o, const char* key, const std::string& prefix, bool* out) {
  if (!o.contains(key) || o[key].is_null()) return absl::OkStatus();
  if (!o[key].is_boolean()) return FieldError(prefix + key, "must be true or false");
  *out = o[key].get<bool>();
  return absl::OkStatus();
}

absl::StatusOr<int> PageSize(const httpd::Request& req) {
  constexpr int kDefaultPage = 50, kMaxPage = 200;
  const std::string v = req.Query("page_size");
  if (v.empty()) return kDefaultPage;
  int n = 0;
  if (!absl::SimpleAtoi(v, &n) || n < 1) {
    return FieldError("page_size", "must be a positive integer");
  }
  return std::min(n, kMaxPage);
}

json Time(int64_t unix_micros) {
  if (unix_micros <= 0) return nullptr;
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMicros(unix_micros),
                          absl::UTCTimeZone());
}

int64_t Micros(const google::protobuf::Timestamp& t) {
  using google::protobuf::util::TimeUtil;
  return t.seconds() == 0 && t.nanos() == 0 ? 0 : TimeUtil::TimestampToMicroseconds(t);
}

std::string EnumText(const std::string& name, size_t prefix) {
  return absl::AsciiStrToLower(name.substr(prefix));
}

}  // namespace c2d::gateway
