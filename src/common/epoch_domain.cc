#include "common/epoch_domain.h"

#include <algorithm>

namespace ferry {

EpochDomain::EpochDomain(unsigned readers)
    : count_(std::max(readers, 1U)), readers_(std::make_unique<Reader[]>(count_)) {}

void EpochDomain::retire(std::shared_ptr<const void> object) {
  std::vector<std::shared_ptr<const void>> doomed;
  {
    std::lock_guard lock(mu_);
    // Readers that announce this epoch or an earlier one may have loaded the old pointer;
    // those that announce a later one loaded the epoch after the new pointer was published.
    const uint64_t e = epoch_.fetch_add(1, std::memory_order_seq_cst);
    retired_.emplace_back(e, std::move(object));
    pending_.store(true, std::memory_order_relaxed);
    collect_locked(doomed);
  }
  // `doomed` is destroyed here, outside the lock: a destructor may take its time.
}

size_t EpochDomain::collect() {
  std::vector<std::shared_ptr<const void>> doomed;
  std::lock_guard lock(mu_);
  return collect_locked(doomed);
}

void EpochDomain::try_collect() {
  std::vector<std::shared_ptr<const void>> doomed;
  std::unique_lock lock(mu_, std::try_to_lock);
  if (lock.owns_lock()) collect_locked(doomed);
}

size_t EpochDomain::collect_locked(std::vector<std::shared_ptr<const void>>& doomed) {
  // Pairs with the fence in enter(): a reader either shows its announcement here or loads the
  // pointer published before retire().
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint64_t oldest = UINT64_MAX;  // the oldest epoch a reader is inside
  for (unsigned i = 0; i < count_; ++i) {
    const uint64_t e = readers_[i].epoch.load(std::memory_order_acquire);
    if (e != 0) oldest = std::min(oldest, e);
  }
  auto safe = std::stable_partition(retired_.begin(), retired_.end(),
                                    [oldest](const auto& r) { return r.first < oldest; });
  for (auto it = retired_.begin(); it != safe; ++it) doomed.push_back(std::move(it->second));
  retired_.erase(retired_.begin(), safe);
  pending_.store(!retired_.empty(), std::memory_order_relaxed);
  return retired_.size();
}

size_t EpochDomain::waiting() const {
  std::lock_guard lock(mu_);
  return retired_.size();
}

}  // namespace ferry
