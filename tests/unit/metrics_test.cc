// The /metrics exposer: the registry's families, and what a collectable
// added to it reads at each scrape.

#include "libs/metrics/metrics.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "libs/http/client.h"

namespace c2d {
namespace {

// Counts its scrapes and reports the count.
class Scrapes final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::ClientMetric m;
    m.label = {{.name = "source", .value = "test"}};
    m.gauge.value = ++calls_;
    return {{.name = "c2d_test_scrapes",
             .help = "Scrapes seen",
             .type = prometheus::MetricType::Gauge,
             .metric = {m}}};
  }

 private:
  mutable int calls_ = 0;
};

TEST_CASE("a collectable added to the exposer is read afresh at every scrape", "[metrics]") {
  auto exposer = metrics::Exposer::Start("127.0.0.1:0");
  REQUIRE(exposer.ok());
  (*exposer)->Add(std::make_shared<Scrapes>());
  auto scrape = [&] {
    auto r = http::Send({.url = "http://" + (*exposer)->address() + "/metrics"});
    REQUIRE(r.ok());
    REQUIRE(r->status == 200);
    return r->body;
  };
  CHECK(absl::StrContains(scrape(), "c2d_test_scrapes{source=\"test\"} 1"));
  CHECK(absl::StrContains(scrape(), "c2d_test_scrapes{source=\"test\"} 2"));
}

}  // namespace
}  // namespace c2d
