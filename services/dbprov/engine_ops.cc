#include "services/dbprov/engine_ops.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "libs/common/command.h"

namespace c2d::dbprov {
namespace {

constexpr std::chrono::hours kToolTimeout{6};

int64_t Rows(const TableCounts& counts) {
  int64_t rows = 0;
  for (const auto& [_, n] : counts) rows += n;
  return rows;
}

void Note(std::string& diff, absl::string_view what) {
  absl::StrAppend(&diff, diff.empty() ? "" : "; ", what);
}

}  // namespace

std::string CompareCounts(const DumpCounts& source, const TableCounts& restored, bool* equal) {
  std::string diff;
  // A table in both counts must be there, with a count between them; one
  // made or dropped during the dump may be either way.
  for (const auto& [table, before] : source.before) {
    auto after = source.after.find(table);
    auto got = restored.find(table);
    if (after == source.after.end()) {
      if (got != restored.end() && got->second > before) Note(diff, table + " has too many rows");
      continue;
    }
    const int64_t lo = std::min(before, after->second), hi = std::max(before, after->second);
    if (got == restored.end()) {
      Note(diff, table + " is missing");
    } else if (got->second < lo || got->second > hi) {
      Note(diff, absl::StrCat(table, " has ", got->second, " rows, not ",
                              lo == hi ? absl::StrCat(lo) : absl::StrCat(lo, "-", hi)));
    }
  }
  for (const auto& [table, _] : restored) {
    if (!source.before.count(table) && !source.after.count(table)) Note(diff, table + " is extra");
  }
  *equal = diff.empty();
  const TableCounts& at = source.after.empty() ? source.before : source.after;
  const int64_t rows = Rows(at);
  // Redis counts keys, not tables.
  const bool keys = at.size() == 1 && at.begin()->first == "keys";
  const std::string what = keys ? absl::StrCat(rows, rows == 1 ? " key" : " keys")
                                : absl::StrCat(at.size(), at.size() == 1 ? " table, " : " tables, ",
                                               rows, rows == 1 ? " row" : " rows");
  if (!*equal) return absl::StrCat(what, " at dump time, but the restored copy differs: ", diff);
  return source.before == source.after
             ? absl::StrCat(what, ": as at dump time")
             : absl::StrCat(what, ": within what the source held while it was dumped");
}

std::string Scrub(std::string message, std::initializer_list<absl::string_view> secrets) {
  for (absl::string_view s : secrets) {
    if (!s.empty()) message = absl::StrReplaceAll(message, {{s, "***"}});
  }
  return message;
}

absl::Status RunTool(std::vector<std::string> argv, std::map<std::string, std::string> env,
                     const std::string& secret, const jobs::JobContext* ctx, Sink on_stdout) {
  const std::string tool = argv[0];
  auto r = RunCommand({.argv = std::move(argv),
                       .env = std::move(env),
                       .timeout = kToolTimeout,
                       .cancel = ctx != nullptr ? ctx->cancel_flag() : nullptr,
                       .on_stdout = std::move(on_stdout)});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat(tool, " failed (exit ", r->exit_code, "): ", Scrub(r->output, {secret})));
  }
  return absl::OkStatus();
}

absl::StatusOr<const EngineOps*> OpsFor(v1::DatabaseEngine engine) {
  switch (engine) {
    case v1::DATABASE_ENGINE_POSTGRES:
      return &PostgresOps();
    case v1::DATABASE_ENGINE_REDIS:
      return &RedisOps();
    case v1::DATABASE_ENGINE_MARIADB:
      return &MariadbOps();
    default:
      return absl::InvalidArgumentError("engine is required (postgres, mariadb or redis)");
  }
}

}  // namespace c2d::dbprov
