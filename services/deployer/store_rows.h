#pragma once

// What the files of the deployer's store (store.cc, volume_store.cc,
// runtime_log_store.cc) share: time columns read as Unix microseconds
// (C2D_MICROS, then pg::SetTime / pg::OptTime), enum columns, and the NOTIFY
// that wakes the streams. Not for callers: they use store.h.

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/pg/pool.h"
#include "libs/pg/rows.h"

// A timestamptz column as Unix microseconds (NULL stays NULL).
#define C2D_MICROS(col) "(extract(epoch FROM " col ") * 1000000)::bigint"

namespace c2d::deployer::rows {

// pg_notify(channel, service id): kEventsChannel, kRuntimeLogChannel.
inline constexpr pg::Statement kNotify{"deployer_notify", "SELECT pg_notify($1, $2)"};

// The enum value whose name is `prefix` + the column's lower-case spelling.
template <typename Enum>
Enum ParseEnum(const std::string& prefix, const std::string& sql,
               bool (*parse)(const std::string&, Enum*)) {
  Enum out{};
  parse(absl::AsciiStrToUpper(absl::StrCat(prefix, sql)), &out);
  return out;
}

}  // namespace c2d::deployer::rows
