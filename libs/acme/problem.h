#pragma once

// ACME problem documents (RFC 8555 §6.7, RFC 7807) as absl::Status.
//
// The Status code says what a caller can do; the problem type and any
// Retry-After travel as payloads, so callers branch on ProblemType() and
// RetryAfter(), never on message text. The message keeps the CA's `detail`
// and subproblems, since c2d shows it to users ("rejectedIdentifier: Invalid
// domain name ...").
//
// Codes by problem type (suffix after "urn:ietf:params:acme:error:"):
//   any type with an HTTP 5xx answer, serverInternal, badNonce  Unavailable
//   rateLimited                                   ResourceExhausted
//   malformed with HTTP 404, accountDoesNotExist  NotFound
//   malformed, badCSR, badPublicKey, badSignatureAlgorithm, badRevocationReason,
//   rejectedIdentifier, unsupportedIdentifier, invalidContact,
//   unsupportedContact, invalidProfile            InvalidArgument
//     (the request itself is refused: sending it again cannot succeed)
//   unauthorized, caa, dns, connection, incorrectResponse, tls,
//   orderNotReady, agreementRequired, externalAccountRequired,
//   userActionRequired, alreadyRevoked, alreadyReplaced  FailedPrecondition
//     (something in the world must change first: DNS, the challenge
//     response, the order's state, the account)
//   compound                                      the code of its first subproblem
//   other types and non-problem answers           by HTTP status: 400 InvalidArgument,
//     401/403 PermissionDenied, 404 NotFound, 409 FailedPrecondition,
//     429 ResourceExhausted, else Unknown

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/http/client.h"

namespace c2d::acme {

inline constexpr absl::string_view kErrorPrefix = "urn:ietf:params:acme:error:";
inline constexpr absl::string_view kBadNonce = "urn:ietf:params:acme:error:badNonce";
inline constexpr absl::string_view kRateLimited = "urn:ietf:params:acme:error:rateLimited";

// The Status for an error answer of the CA (HTTP status >= 400). `what`
// names the request (e.g. "newOrder"). A body that is not a problem document
// (a proxy's HTML page) still gives a Status, by HTTP status, with no type.
absl::Status ProblemStatus(const http::Response& response, absl::string_view what);

// The Status for a problem object (an order's or a challenge's "error", or a
// response body). `http_status` is the answer's status, 0 when the problem
// is embedded in a resource (its own "status" member is used then).
absl::Status ProblemFromJson(const nlohmann::json& problem, long http_status,
                             absl::string_view what,
                             std::optional<absl::Duration> retry_after = std::nullopt);

// The problem type of a Status made here (e.g.
// "urn:ietf:params:acme:error:rateLimited"); "" for any other Status.
std::string ProblemType(const absl::Status& status);

// When the CA said to try again (its Retry-After header), if it did.
std::optional<absl::Duration> RetryAfter(const absl::Status& status);

// A Retry-After header value: delta-seconds or an IMF-fixdate HTTP date
// ("Wed, 21 Oct 2015 07:28:00 GMT"), as a duration from `now` (a date in the
// past gives zero). nullopt when empty or unparseable.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

}  // namespace c2d::acme
