#include "libs/pg/errors.h"

#include <pqxx/except>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace c2d::pg {
namespace {

constexpr absl::string_view kConnectionMarker = "[pg connection]";

std::string Message(absl::string_view context, const std::exception& e) {
  std::string what = e.what();
  // libpqxx messages end with a newline; keep log lines and API errors tidy.
  while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
  return absl::StrCat(context, ": ", what);
}

}  // namespace

absl::Status ToStatus(const std::exception& e, absl::string_view context) {
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return absl::UnavailableError(
        absl::StrCat(Message(context, e), " (commit outcome unknown) ", kConnectionMarker));
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return absl::UnavailableError(absl::StrCat(Message(context, e), " ", kConnectionMarker));
  }
  if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
    return absl::AlreadyExistsError(Message(context, e));
  }
  if (dynamic_cast<const pqxx::foreign_key_violation*>(&e) != nullptr ||
      dynamic_cast<const pqxx::check_violation*>(&e) != nullptr ||
      dynamic_cast<const pqxx::not_null_violation*>(&e) != nullptr) {
    return absl::FailedPreconditionError(Message(context, e));
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
      return absl::UnavailableError(absl::StrCat(Message(context, e), " ", kConnectionMarker));
    }
    return absl::InternalError(absl::StrCat(Message(context, e), " [SQLSTATE ", state, "]"));
  }
  return absl::InternalError(Message(context, e));
}

bool IsConnectionError(const absl::Status& status) {
  return absl::IsUnavailable(status) &&
         status.message().find(kConnectionMarker) != absl::string_view::npos;
}

}  // namespace c2d::pg
