#include "libs/common/cron.h"

#include <catch2/catch.hpp>

#include "absl/time/civil_time.h"
#include "services/dbprov/schedule.h"

namespace c2d {
namespace {

absl::Time At(int y, int mo, int d, int h = 0, int mi = 0) {
  return absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi), absl::UTCTimeZone());
}

absl::Time Next(const std::string& expr, absl::Time after) {
  auto s = cron::Schedule::Parse(expr);
  REQUIRE(s.ok());
  return s->Next(after);
}

std::string Error(const std::string& expr) {
  auto s = cron::Schedule::Parse(expr);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.status().message());
}

TEST_CASE("cron: the default schedule runs daily at 03:00 UTC") {
  CHECK(Next("0 3 * * *", At(2026, 12, 1, 2, 59)) == At(2026, 12, 1, 3, 0));
  // Strictly after: at 03:00 the next one is tomorrow's.
  CHECK(Next("0 3 * * *", At(2026, 12, 1, 3, 0)) == At(2026, 12, 2, 3, 0));
  CHECK(Next("0 3 * * *", At(2026, 12, 31, 4, 0)) == At(2027, 1, 1, 3, 0));
  // Seconds past a minute count as that minute.
  CHECK(Next("* * * * *", At(2026, 12, 1, 10, 0) + absl::Seconds(30)) == At(2026, 12, 1, 10, 1));
}

TEST_CASE("cron: lists, ranges, steps and names") {
  CHECK(Next("*/15 * * * *", At(2026, 12, 1, 10, 1)) == At(2026, 12, 1, 10, 15));
  CHECK(Next("0-30/10 9-17 * * *", At(2026, 12, 1, 17, 31)) == At(2026, 12, 2, 9, 0));
  CHECK(Next("5,50 * * * *", At(2026, 12, 1, 10, 6)) == At(2026, 12, 1, 10, 50));
  // 2026-12-01 is a Tuesday; the next Monday is 12-07.
  CHECK(Next("0 0 * * mon", At(2026, 12, 1)) == At(2026, 12, 7));
  CHECK(Next("0 0 * * 1", At(2026, 12, 1)) == At(2026, 12, 7));
  // Sunday is 0 and 7.
  CHECK(Next("0 0 * * 7", At(2026, 12, 1)) == At(2026, 12, 6));
  CHECK(Next("0 0 * * SUN", At(2026, 12, 1)) == At(2026, 12, 6));
  CHECK(Next("0 0 1 feb *", At(2026, 12, 1)) == At(2027, 2, 1));
  // Leap day.
  CHECK(Next("0 0 29 2 *", At(2026, 12, 1)) == At(2028, 2, 29));
}

TEST_CASE("cron: two restricted day fields match either, as in cron") {
  // The 10th, or any Friday (2026-12-04).
  CHECK(Next("0 0 10 * fri", At(2026, 12, 1)) == At(2026, 12, 4));
  CHECK(Next("0 0 10 * fri", At(2026, 12, 8)) == At(2026, 12, 10));
}

TEST_CASE("cron: a day that never comes has no next time") {
  CHECK(Next("0 0 30 2 *", At(2026, 12, 1)) == absl::InfiniteFuture());
}

TEST_CASE("cron: bad expressions say which field is wrong") {
  CHECK(Error("0 3 * *").find("5 fields") != std::string::npos);
  CHECK(Error("60 3 * * *").find("minute field") != std::string::npos);
  CHECK(Error("0 24 * * *").find("out of 0-23") != std::string::npos);
  CHECK(Error("0 3 0 * *").find("day of month") != std::string::npos);
  CHECK(Error("0 3 * 13 *").find("month field") != std::string::npos);
  CHECK(Error("0 3 * * funday").find("not a number") != std::string::npos);
  CHECK(Error("*/0 * * * *").find("step") != std::string::npos);
  CHECK(Error("5-1 * * * *").find("backwards") != std::string::npos);
  CHECK(Error("1,,2 * * * *").find("not a number") != std::string::npos);
  CHECK(Error("-1 * * * *").find("not a number") != std::string::npos);
}

dbprov::EndedBackup Ended(const std::string& id, absl::Time at, bool ok = true) {
  return {id, ok, at};
}

TEST_CASE("retention: the newest backup of each of the last days and weeks") {
  // Two a day, newest first, over 40 days ending 2026-12-01 (a Tuesday).
  std::vector<dbprov::EndedBackup> all;
  for (int d = 0; d < 40; ++d) {
    const absl::Time day = At(2026, 12, 1) - absl::Hours(24 * d);
    all.push_back(Ended("evening-" + std::to_string(d), day + absl::Hours(20)));
    all.push_back(Ended("morning-" + std::to_string(d), day + absl::Hours(3)));
  }
  const auto kept = dbprov::KeptBackups(all, 7, 4, At(2026, 12, 2));
  // 7 days: each day's evening one; weeks: the newest of this week (day 0),
  // of the week of 11-23 (Sunday 11-29, day 2), 11-16 (day 9), 11-09 (day 16).
  std::set<std::string> want;
  for (int d = 0; d < 7; ++d) want.insert("evening-" + std::to_string(d));
  for (int d : {9, 16}) want.insert("evening-" + std::to_string(d));
  CHECK(kept == want);
}

TEST_CASE("retention: failed backups are kept a week, and never count as a day's backup") {
  const absl::Time now = At(2026, 12, 1, 12);
  std::vector<dbprov::EndedBackup> all = {
      Ended("failed-today", now - absl::Hours(1), false),
      Ended("ok-yesterday", now - absl::Hours(24)),
      Ended("failed-old", now - absl::Hours(24 * 10), false),
  };
  CHECK(dbprov::KeptBackups(all, 1, 0, now) ==
        std::set<std::string>{"failed-today", "ok-yesterday"});
  // Backups stopped for a month: the last ones are still kept.
  std::vector<dbprov::EndedBackup> old = {Ended("a", now - absl::Hours(24 * 30)),
                                          Ended("b", now - absl::Hours(24 * 31))};
  CHECK(dbprov::KeptBackups(old, 7, 0, now) == std::set<std::string>{"a", "b"});
  CHECK(dbprov::KeptBackups(old, 0, 0, now).empty());
}

}  // namespace
}  // namespace c2d
