#pragma once

// Summary figures of a benchmark's samples.

#include <algorithm>
#include <numeric>
#include <vector>

namespace c2d::bench {

struct Stats {
  double median, mean, min, max;
};

inline Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  return {v[v.size() / 2], mean, v.front(), v.back()};
}

}  // namespace c2d::bench
