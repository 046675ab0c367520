#include "services/gateway/limits.h"

#include <algorithm>

namespace c2d::gateway {

bool RateLimiter::Take(const std::string& key, absl::Duration* retry_after) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  // Bounded: a full bucket forgotten is a full bucket made again.
  if (buckets_.size() > 100'000) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      const Bucket& b = it->second;
      if (b.tokens + absl::ToDoubleSeconds(now - b.at) * per_second_ >= burst_) {
        buckets_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  b.tokens = std::min(burst_, b.tokens + absl::ToDoubleSeconds(now - b.at) * per_second_);
  b.at = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return true;
  }
  if (retry_after != nullptr) *retry_after = absl::Seconds((1 - b.tokens) / per_second_);
  return false;
}

std::shared_ptr<void> SlotCounter::Acquire(const std::string& key) {
  {
    absl::MutexLock lock(&mu_);
    int64_t& n = used_[key];
    if (n >= per_key_) return nullptr;
    ++n;
  }
  return std::shared_ptr<void>(new std::string(key), [this](void* p) {
    auto* held = static_cast<std::string*>(p);
    Release(*held);
    delete held;
  });
}

int64_t SlotCounter::InUse(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = used_.find(key);
  return it == used_.end() ? 0 : it->second;
}

void SlotCounter::Release(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = used_.find(key);
  if (it == used_.end()) return;
  if (--it->second <= 0) used_.erase(it);
}

}  // namespace c2d::gateway
