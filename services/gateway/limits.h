#pragma once

// The gateway's per-key limits (per user, per webhook): token buckets for
// request rates and counters for open streams. In memory, per gateway
// process; bounded in the number of keys they track. Thread-safe.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace c2d::gateway {

class RateLimiter {
 public:
  // `burst` requests at once, refilled at `per_second`.
  RateLimiter(double burst, double per_second) : burst_(burst), per_second_(per_second) {}
  // Takes one token of `key`'s bucket; false when it is empty, with the time
  // until the next token in *retry_after.
  bool Take(const std::string& key, absl::Duration* retry_after = nullptr);

 private:
  struct Bucket {
    double tokens;
    absl::Time at;
  };
  const double burst_, per_second_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

class SlotCounter {
 public:
  explicit SlotCounter(int64_t per_key) : per_key_(per_key) {}
  // A slot of `key`, given back when the last copy of the handle goes;
  // nullptr when `key` holds per_key slots already.
  std::shared_ptr<void> Acquire(const std::string& key);
  int64_t InUse(const std::string& key);

 private:
  void Release(const std::string& key);

  const int64_t per_key_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> used_ ABSL_GUARDED_BY(mu_);
};

}  // namespace c2d::gateway
