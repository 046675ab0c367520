#pragma once

// Five-field cron expressions, in UTC: "minute hour day-of-month month
// day-of-week", as crontab(5) has them. Each field is `*` or a list of
// numbers and ranges (`1,15`, `1-5`), each with an optional step (`*/15`,
// `0-30/10`); months and days of the week may be named (`jan`, `mon`,
// case-insensitive) and Sunday is 0 or 7. As in cron, when both day fields
// are restricted a day matching either one is chosen.

#include <bitset>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace c2d::cron {

class Schedule {
 public:
  // InvalidArgument saying which field is wrong and why.
  static absl::StatusOr<Schedule> Parse(const std::string& expression);

  // The first minute strictly after `after` that the schedule names.
  // InfiniteFuture when there is none within 8 years (e.g. "0 0 30 2 *").
  absl::Time Next(absl::Time after) const;

 private:
  bool DayMatches(const absl::CivilDay& day) const;

  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1-31
  std::bitset<13> months_;   // 1-12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool any_day_ = true, any_weekday_ = true;
};

}  // namespace c2d::cron
