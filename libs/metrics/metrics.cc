#include "libs/metrics/metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace c2d::metrics {

namespace {
const std::shared_ptr<prometheus::Registry>& SharedRegistry() {
  // Never destroyed: collectors may be touched by threads still running at exit.
  static const auto* registry =
      new std::shared_ptr<prometheus::Registry>(std::make_shared<prometheus::Registry>());
  return *registry;
}
}  // namespace

prometheus::Registry& Registry() { return *SharedRegistry(); }

absl::StatusOr<std::unique_ptr<Exposer>> Exposer::Start(const std::string& address) {
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
    exposer->RegisterCollectable(SharedRegistry());
    auto ports = exposer->GetListeningPorts();
    std::string host = address.substr(0, address.rfind(':'));
    std::string bound = ports.empty() ? address : absl::StrCat(host, ":", ports.front());
    return std::unique_ptr<Exposer>(new Exposer(std::move(exposer), std::move(bound)));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
}

void Exposer::Add(std::shared_ptr<prometheus::Collectable> c) {
  exposer_->RegisterCollectable(c);
  collectables_.push_back(std::move(c));
}

const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};
  return *buckets;
}

}  // namespace c2d::metrics
