#include "libs/jobs/backoff.h"

#include <catch2/catch.hpp>

#include "libs/jobs/job.h"

namespace c2d {
namespace {

using std::chrono::milliseconds;

TEST_CASE("backoff doubles per attempt within [d/2, d] and caps", "[jobs][backoff]") {
  const milliseconds base(1000), max(3'600'000);
  CHECK(jobs::Backoff(1, base, max, 0.0) == milliseconds(500));
  CHECK(jobs::Backoff(1, base, max, 0.999999) == milliseconds(999));
  CHECK(jobs::Backoff(2, base, max, 0.0) == milliseconds(1000));
  CHECK(jobs::Backoff(3, base, max, 0.5) == milliseconds(3000));
  // Below the cap (1 s * 2^11 < 1 h), never shrinks from one attempt to the
  // next, whatever the jitter.
  for (int attempt = 1; attempt < 12; ++attempt) {
    CHECK(jobs::Backoff(attempt + 1, base, max, 0.0) >= jobs::Backoff(attempt, base, max, 1.0));
  }
  CHECK(jobs::Backoff(40, base, max, 1.0) == max);
  CHECK(jobs::Backoff(1000, base, max, 0.0) == max / 2);
  CHECK(jobs::Backoff(0, base, max, 0.0) == milliseconds(500));
}

TEST_CASE("permanent errors are marked and recognised", "[jobs]") {
  absl::Status plain = absl::NotFoundError("gone");
  absl::Status permanent = jobs::Permanent(plain);
  CHECK_FALSE(jobs::IsPermanent(plain));
  CHECK(jobs::IsPermanent(permanent));
  CHECK(permanent.code() == plain.code());
  CHECK(permanent.message() == plain.message());
  CHECK(jobs::Permanent(absl::OkStatus()).ok());
}

TEST_CASE("job states round-trip through their names", "[jobs]") {
  for (auto s : {jobs::State::kAvailable, jobs::State::kRunning, jobs::State::kSucceeded,
                 jobs::State::kFailed, jobs::State::kCancelled}) {
    CHECK(jobs::ParseState(jobs::StateName(s)) == s);
  }
  CHECK_FALSE(jobs::ParseState("done").has_value());
}

}  // namespace
}  // namespace c2d
