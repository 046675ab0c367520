#include "libs/common/cron.h"

#include <array>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace c2d::cron {
namespace {

struct Field {
  const char* name;
  int min, max;
  // Names of min, min+1, … (months, weekdays), or empty.
  std::vector<std::string> names;
};

const std::array<Field, 5>& Fields() {
  static const auto* fields = new std::array<Field, 5>{{
      {"minute", 0, 59, {}},
      {"hour", 0, 23, {}},
      {"day of month", 1, 31, {}},
      {"month",
       1,
       12,
       {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
      // 7 is Sunday too.
      {"day of week", 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
  }};
  return *fields;
}

absl::Status Bad(const Field& f, absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("the ", f.name, " field \"", text, "\" ", why));
}

absl::StatusOr<int> Value(const Field& f, absl::string_view field_text, absl::string_view v) {
  const std::string lower = absl::AsciiStrToLower(v);
  for (size_t i = 0; i < f.names.size(); ++i) {
    if (lower == f.names[i]) return f.min + static_cast<int>(i);
  }
  int n = 0;
  if (!absl::SimpleAtoi(v, &n) || v.empty() || !absl::ascii_isdigit(v[0])) {
    return Bad(f, field_text, absl::StrCat("has \"", v, "\", which is not a number"));
  }
  if (n < f.min || n > f.max) {
    return Bad(f, field_text, absl::StrCat("has ", n, ", out of ", f.min, "-", f.max));
  }
  return n;
}

// The values one field names, as bits; `any` when it is "*".
absl::Status ParseField(const Field& f, absl::string_view text, std::vector<bool>& bits,
                        bool& any) {
  bits.assign(f.max + 1, false);
  any = text == "*";
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, absl::MaxSplits('/', 1));
    int step = 1;
    if (parts.size() == 2) {
      if (!absl::SimpleAtoi(parts[1], &step) || step < 1 || step > f.max) {
        return Bad(f, text, absl::StrCat("has the step \"", parts[1], "\"; it must be 1-", f.max));
      }
    }
    int lo = f.min, hi = f.max;
    if (parts[0] != "*") {
      std::vector<absl::string_view> range = absl::StrSplit(parts[0], absl::MaxSplits('-', 1));
      auto a = Value(f, text, range[0]);
      if (!a.ok()) return a.status();
      lo = hi = *a;
      if (range.size() == 2) {
        auto b = Value(f, text, range[1]);
        if (!b.ok()) return b.status();
        hi = *b;
      } else if (parts.size() == 2) {
        hi = f.max;  // "5/10" = "5-max/10"
      }
      if (lo > hi) return Bad(f, text, absl::StrCat("has the range ", lo, "-", hi, " backwards"));
    }
    for (int v = lo; v <= hi; v += step) bits[v] = true;
  }
  return absl::OkStatus();
}

template <size_t N>
void Copy(const std::vector<bool>& bits, std::bitset<N>& out) {
  for (size_t i = 0; i < N && i < bits.size(); ++i) out[i] = bits[i];
}

}  // namespace

absl::StatusOr<Schedule> Schedule::Parse(const std::string& expression) {
  std::vector<std::string> parts = absl::StrSplit(expression, ' ', absl::SkipEmpty());
  if (parts.size() != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("a cron expression has 5 fields (minute hour day-of-month month "
                     "day-of-week, UTC), e.g. \"0 3 * * *\"; \"",
                     expression, "\" has ", parts.size()));
  }
  Schedule s;
  std::array<std::vector<bool>, 5> bits;
  std::array<bool, 5> any{};
  for (size_t i = 0; i < 5; ++i) {
    if (absl::Status st = ParseField(Fields()[i], parts[i], bits[i], any[i]); !st.ok()) return st;
  }
  Copy(bits[0], s.minutes_);
  Copy(bits[1], s.hours_);
  Copy(bits[2], s.days_);
  Copy(bits[3], s.months_);
  if (bits[4][7]) bits[4][0] = true;
  Copy(bits[4], s.weekdays_);
  s.any_day_ = any[2];
  s.any_weekday_ = any[4];
  return s;
}

bool Schedule::DayMatches(const absl::CivilDay& day) const {
  if (!months_[day.month()]) return false;
  const bool dom = days_[day.day()];
  const int wd = (static_cast<int>(absl::GetWeekday(day)) + 1) % 7;  // Monday = 0 in absl
  const bool dow = weekdays_[wd];
  if (any_day_ && any_weekday_) return true;
  if (any_day_) return dow;
  if (any_weekday_) return dom;
  return dom || dow;
}

absl::Time Schedule::Next(absl::Time after) const {
  const absl::CivilMinute start = absl::ToCivilMinute(after, absl::UTCTimeZone()) + 1;
  absl::CivilDay day(start);
  const absl::CivilDay last = day + 8 * 366;
  for (; day <= last; ++day) {
    if (!DayMatches(day)) continue;
    for (int h = 0; h < 24; ++h) {
      if (!hours_[h]) continue;
      for (int m = 0; m < 60; ++m) {
        if (!minutes_[m]) continue;
        absl::CivilMinute t(day.year(), day.month(), day.day(), h, m);
        if (t >= start) return absl::FromCivil(t, absl::UTCTimeZone());
      }
    }
  }
  return absl::InfiniteFuture();
}

}  // namespace c2d::cron
