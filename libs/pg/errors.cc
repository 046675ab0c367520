#include "libs/pg/errors.h"

#include <pqxx/except>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace c2d::pg {
namespace {

// What the error means, beside its code: the connection is unusable, or
// which kind of constraint was violated.
constexpr absl::string_view kConnectionPayload = "type.c2d.dev/pg-connection";
constexpr absl::string_view kConstraintPayload = "type.c2d.dev/pg-constraint";

absl::Status ConnectionLost(std::string message) {
  absl::Status s = absl::UnavailableError(std::move(message));
  s.SetPayload(kConnectionPayload, absl::Cord("1"));
  return s;
}

absl::Status Violated(absl::string_view constraint, std::string message) {
  absl::Status s = constraint == "unique" ? absl::AlreadyExistsError(std::move(message))
                                          : absl::FailedPreconditionError(std::move(message));
  s.SetPayload(kConstraintPayload, absl::Cord(constraint));
  return s;
}

std::string Message(absl::string_view context, const std::exception& e) {
  std::string what = e.what();
  // libpqxx messages end with a newline; keep log lines and API errors tidy.
  while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
  return absl::StrCat(context, ": ", what);
}

}  // namespace

absl::Status ToStatus(const std::exception& e, absl::string_view context) {
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return ConnectionLost(absl::StrCat(Message(context, e), " (commit outcome unknown)"));
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return ConnectionLost(Message(context, e));
  }
  if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
    return Violated("unique", Message(context, e));
  }
  if (dynamic_cast<const pqxx::foreign_key_violation*>(&e) != nullptr) {
    return Violated("foreign_key", Message(context, e));
  }
  if (dynamic_cast<const pqxx::check_violation*>(&e) != nullptr) {
    return Violated("check", Message(context, e));
  }
  if (dynamic_cast<const pqxx::not_null_violation*>(&e) != nullptr) {
    return Violated("not_null", Message(context, e));
  }
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr ||
      dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) {
    return absl::AbortedError(Message(context, e));
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql != nullptr) {
    const std::string& state = sql->sqlstate();
    // 57014 query_canceled: statement_timeout or lock_timeout fired.
    if (state == "57014" || state == "55P03") {
      return absl::DeadlineExceededError(Message(context, e));
    }
    // 57P01 admin_shutdown and friends (class 57, 08) mean the server went away.
    if (state.rfind("57", 0) == 0 || state.rfind("08", 0) == 0) {
      return ConnectionLost(Message(context, e));
    }
    return absl::InternalError(absl::StrCat(Message(context, e), " [SQLSTATE ", state, "]"));
  }
  return absl::InternalError(Message(context, e));
}

bool IsConnectionError(const absl::Status& status) {
  return absl::IsUnavailable(status) && status.GetPayload(kConnectionPayload).has_value();
}

bool IsForeignKeyViolation(const absl::Status& status) {
  auto c = status.GetPayload(kConstraintPayload);
  return c.has_value() && *c == "foreign_key";
}

}  // namespace c2d::pg
