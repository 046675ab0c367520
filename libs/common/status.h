#pragma once

// Status propagation helpers (Abseil of this vintage ships none publicly).

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#define C2D_CONCAT_INNER_(a, b) a##b
#define C2D_CONCAT_(a, b) C2D_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define C2D_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status c2d_status_ = (expr);       \
    if (!c2d_status_.ok()) return c2d_status_; \
  } while (0)

// `lhs = value of expr` (an absl::StatusOr<T>), or returns its error.
#define C2D_ASSIGN_OR_RETURN(lhs, expr) \
  C2D_ASSIGN_OR_RETURN_IMPL_(C2D_CONCAT_(c2d_statusor_, __LINE__), lhs, expr)
#define C2D_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(*tmp)

namespace c2d {

// `status` with `prefix` before its message; code and payloads kept (OK
// stays OK).
inline absl::Status WithContext(const absl::Status& status, absl::string_view prefix) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(prefix, status.message()));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

}  // namespace c2d
