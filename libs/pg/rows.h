#pragma once

// Small helpers for statements' parameters and results, shared by the
// services' stores.

#include <pqxx/pqxx>
#include <string>
#include <vector>

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

}  // namespace c2d::pg
