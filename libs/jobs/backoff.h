#pragma once

#include <chrono>
#include <cstdint>

namespace c2d::jobs {

// Delay before retry number `attempt` (1 = the retry after the first failure):
// d = min(max, base * 2^(attempt-1)), then "equal jitter": a value in
// [d/2, d] picked by `unit_random` ∈ [0, 1). Delays never shrink from one
// attempt to the next (until capped), yet retries of jobs that failed
// together spread out.
std::chrono::milliseconds Backoff(int attempt, std::chrono::milliseconds base,
                                  std::chrono::milliseconds max, double unit_random);

}  // namespace c2d::jobs
