#pragma once

// The one place where libpqxx exceptions become absl::Status.

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace c2d::pg {

// Maps an exception thrown by libpqxx (or anything else) to a Status whose
// message starts with `context`:
//   broken_connection                  -> Unavailable (retry on a new connection)
//   in_doubt_error                     -> Unavailable, "commit outcome unknown"
//   unique_violation                   -> AlreadyExists
//   foreign_key / check / not_null     -> FailedPrecondition
//   serialization_failure / deadlock   -> Aborted (retry the transaction)
//   query_canceled (statement_timeout) -> DeadlineExceeded
//   other sql_error                    -> Internal, with the SQLSTATE
absl::Status ToStatus(const std::exception& e, absl::string_view context);

// True for errors after which the connection must be discarded (a payload
// says so, not the message).
bool IsConnectionError(const absl::Status& status);
// True for a foreign key violation (FailedPrecondition).
bool IsForeignKeyViolation(const absl::Status& status);

}  // namespace c2d::pg
