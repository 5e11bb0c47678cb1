// LiveList: the objects of one kind that are alive right now, for metrics (the daemon lists the
// blob caches and prefetchers of its open images without the image layer handing them up).
// Holds weak pointers only: listing never keeps an object alive, and an object leaves the list
// when its last owner drops it. Thread-safe; add() and snapshot() take a lock (never call them
// on a hot path).
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

namespace ferry {

template <typename T>
class LiveList {
 public:
  void add(const std::shared_ptr<T>& object) {
    std::lock_guard lock(mu_);
    std::erase_if(entries_, [](const std::weak_ptr<T>& w) { return w.expired(); });
    entries_.push_back(object);
  }
  [[nodiscard]] std::vector<std::shared_ptr<T>> snapshot() const {
    std::vector<std::shared_ptr<T>> live;
    std::lock_guard lock(mu_);
    for (const auto& w : entries_) {
      if (auto p = w.lock()) live.push_back(std::move(p));
    }
    return live;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::weak_ptr<T>> entries_;
};

}  // namespace ferry
