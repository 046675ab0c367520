#include "libs/jobs/backoff.h"

#include <algorithm>

namespace c2d::jobs {

std::chrono::milliseconds Backoff(int attempt, std::chrono::milliseconds base,
                                  std::chrono::milliseconds max, double unit_random) {
  attempt = std::max(attempt, 1);
  int64_t d = base.count();
  for (int i = 1; i < attempt && d < max.count(); ++i) d *= 2;
  d = std::min<int64_t>(d, max.count());
  unit_random = std::clamp(unit_random, 0.0, 1.0);
  return std::chrono::milliseconds(d / 2 + static_cast<int64_t>((d - d / 2) * unit_random));
}

}  // namespace c2d::jobs
