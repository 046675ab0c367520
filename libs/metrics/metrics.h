#pragma once

// The process's one Prometheus registry and its /metrics exposer.
//
// Every library registers its families on Registry(); main() starts the
// exposer once. Metric names follow c2d_<area>_<what>_<unit>.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace c2d::metrics {

// The process-wide registry (a deliberate global, see STYLE.md).
prometheus::Registry& Registry();

// Serves GET /metrics on `address` (host:port; port 0 picks a free one).
// The returned exposer serves until destroyed.
class Exposer {
 public:
  static absl::StatusOr<std::unique_ptr<Exposer>> Start(const std::string& address);

  // The address actually bound, e.g. "127.0.0.1:41234".
  const std::string& address() const { return address_; }

  // Also serves what `c` collects at each scrape: figures read from the
  // database when asked, which every replica then reports alike, however
  // leadership moves. Kept alive by the exposer.
  void Add(std::shared_ptr<prometheus::Collectable> c);

 private:
  Exposer(std::unique_ptr<prometheus::Exposer> exposer, std::string address)
      : exposer_(std::move(exposer)), address_(std::move(address)) {}

  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string address_;
};

// Buckets for durations in seconds, from 5 ms to 30 min.
const prometheus::Histogram::BucketBoundaries& DurationBuckets();

}  // namespace c2d::metrics
