#include "libs/jobs/job.h"

#include "absl/strings/cord.h"

namespace c2d::jobs {
namespace {
constexpr absl::string_view kPermanentUrl = "type.c2d.dev/jobs.Permanent";
}  // namespace

absl::string_view StateName(State state) {
  switch (state) {
    case State::kAvailable:
      return "available";
    case State::kRunning:
      return "running";
    case State::kSucceeded:
      return "succeeded";
    case State::kFailed:
      return "failed";
    case State::kCancelled:
      return "cancelled";
  }
  return "available";
}

std::optional<State> ParseState(absl::string_view name) {
  for (State s :
       {State::kAvailable, State::kRunning, State::kSucceeded, State::kFailed, State::kCancelled}) {
    if (StateName(s) == name) return s;
  }
  return std::nullopt;
}

absl::Status Permanent(absl::Status status) {
  if (status.ok()) return status;
  status.SetPayload(kPermanentUrl, absl::Cord("1"));
  return status;
}

bool IsPermanent(const absl::Status& status) {
  return status.GetPayload(kPermanentUrl).has_value();
}

}  // namespace c2d::jobs
