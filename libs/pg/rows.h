#pragma once

// Small helpers for statements' parameters and results, shared by the
// services' stores.

#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>

#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace c2d::pg {

// A PostgreSQL text[] literal with every element quoted and escaped, for a
// `$n::text[]` parameter.
inline std::string TextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

// One page of a List RPC from rows fetched with LIMIT page_size + 1: calls
// add(row) for the first page_size rows, each returning the item's id, and
// returns the next page token (the last id added) when there were more rows,
// else "".
template <typename Add>
std::string FillPage(const pqxx::result& rows, int page_size, Add add) {
  std::string last;
  for (int i = 0; i < static_cast<int>(rows.size()) && i < page_size; ++i) last = add(rows[i]);
  return static_cast<int>(rows.size()) > page_size ? last : "";
}

// A timestamp column read as Unix microseconds
// ((extract(epoch FROM col) * 1000000)::bigint) into `t`, unless NULL.
inline void SetTime(const pqxx::field& f, google::protobuf::Timestamp* t) {
  if (!f.is_null()) {
    *t = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(f.as<int64_t>());
  }
}

// The same column as an absl::Time; nullopt when NULL.
inline std::optional<absl::Time> OptTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return absl::FromUnixMicros(f.as<int64_t>());
}

}  // namespace c2d::pg
