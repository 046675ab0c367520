#pragma once

// The REST API's conventions (DESIGN §5) in one place: JSON responses, the
// error body {"error":{"code","message","field"}}, the one mapping from
// absl/gRPC status codes to HTTP, and strict parsing of request bodies
// (objects only, unknown fields and wrong types rejected, the field named).

#include <google/protobuf/timestamp.pb.h>

#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/httpd/server.h"
#include "nlohmann/json.hpp"

namespace c2d::gateway {

using nlohmann::json;

httpd::Response Json(int status, const json& body);
// An error response; `field` may be empty.
httpd::Response Error(int status, const std::string& code, const std::string& message,
                      const std::string& field = "");
// The HTTP answer for a Status from c2d's code or a downstream service.
// INVALID_ARGUMENT messages of the form "<field>: <why>" name the field
// ("spec." prefixes of downstream specs are dropped: the REST body is the spec).
httpd::Response FromStatus(const absl::Status& status);

// InvalidArgument "<field>: <why>".
absl::Status FieldError(const std::string& field, const std::string& why);

// The body as a JSON object whose keys are all in `allowed`. An empty body
// is {} when `empty_ok`.
absl::StatusOr<json> ParseObject(const std::string& body,
                                 std::initializer_list<const char*> allowed, bool empty_ok = false);
// A member object of `o` (absent = {}), checked like ParseObject; `field` is
// its path for errors, e.g. "run".
absl::StatusOr<json> SubObject(const json& o, const char* key,
                               std::initializer_list<const char*> allowed);

// Typed optional members: each leaves *out unchanged when the key is absent
// (or null), and rejects a wrong type or range naming `prefix + key`.
absl::Status GetString(const json& o, const char* key, const std::string& prefix, std::string* out,
                       size_t max_len = 4096);
absl::Status GetInt(const json& o, const char* key, const std::string& prefix, int lo, int hi,
                    int* out);
absl::Status GetBool(const json& o, const char* key, const std::string& prefix, bool* out);

// ?page_size= of a list route: default 50, at most 200.
absl::StatusOr<int> PageSize(const httpd::Request& req);

// RFC 3339 in UTC with milliseconds, or null for an unset time.
json Time(int64_t unix_micros);
// The string, or null when it is empty (an optional field).
inline json OrNull(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }
// A protobuf timestamp in microseconds; 0 when unset.
int64_t Micros(const google::protobuf::Timestamp& t);
// An enum value's name without its prefix, lower case:
// EnumText("DEPLOYMENT_STATE_LIVE", 17) == "live".
std::string EnumText(const std::string& name, size_t prefix);

}  // namespace c2d::gateway
