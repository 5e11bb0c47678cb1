// EpochDomain: lets a fixed set of reader threads use objects without a lock or a shared
// reference count, and frees a retired object once no reader can still hold it (epoch-based
// reclamation).
//
// A reader (index 0 .. readers-1, one thread per index at a time) brackets each use with a
// Guard: entering stores the current epoch in the reader's own cache line and fences; leaving
// stores 0 there. Neither touches a line another reader writes, so readers never bounce a
// cache line between cores; the only shared line they read (the epoch, a "something is
// retired" flag) is written only by retire(), rarely. Inside the guard a reader loads the
// published pointer (acquire) and may use what it points to until it leaves.
//
// A writer publishes a new object first (a seq_cst store of the pointer readers load), then
// retire()s the old one: it is destroyed when every reader is outside or entered after the
// retire. That is checked by retire() itself and, while something waits, by every reader
// leaving its guard (a try-lock, never a wait), so an object lives no longer than the longest
// request that could still see it. Destruction runs on whichever thread found it safe.
//
// Thread-safety: Guard per reader index as above; retire()/collect()/waiting() from any thread.
// Destroying the domain destroys what is still retired; no reader may be inside then.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace ferry {

class EpochDomain {
 public:
  explicit EpochDomain(unsigned readers);
  EpochDomain(const EpochDomain&) = delete;
  EpochDomain& operator=(const EpochDomain&) = delete;
  ~EpochDomain() = default;

  class Guard {
   public:
    Guard(EpochDomain& domain, unsigned reader) : domain_(domain), reader_(reader % domain.count_) {
      domain_.enter(reader_);
    }
    ~Guard() { domain_.leave(reader_); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    EpochDomain& domain_;
    unsigned reader_;
  };

  // Destroys `object` once every reader inside a guard now has left it.
  void retire(std::shared_ptr<const void> object);
  // Destroys what is safe to destroy now; returns how many objects still wait.
  size_t collect();
  // Objects retired and not yet destroyed.
  [[nodiscard]] size_t waiting() const;
  [[nodiscard]] unsigned readers() const { return count_; }

 private:
  struct alignas(64) Reader {
    std::atomic<uint64_t> epoch{0};  // 0: outside; else the epoch it entered in
  };

  void enter(unsigned reader) {
    Reader& r = readers_[reader];
    r.epoch.store(epoch_.load(std::memory_order_acquire), std::memory_order_relaxed);
    // Orders the announcement before the reader's loads of published pointers; pairs with the
    // fence in collect().
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  void leave(unsigned reader) {
    readers_[reader].epoch.store(0, std::memory_order_release);
    if (pending_.load(std::memory_order_relaxed)) try_collect();
  }
  void try_collect();
  size_t collect_locked(std::vector<std::shared_ptr<const void>>& doomed);

  const unsigned count_;
  std::unique_ptr<Reader[]> readers_;
  alignas(64) std::atomic<uint64_t> epoch_{1};
  std::atomic<bool> pending_{false};
  mutable std::mutex mu_;
  std::vector<std::pair<uint64_t, std::shared_ptr<const void>>> retired_;  // (epoch, object)
};

}  // namespace ferry
