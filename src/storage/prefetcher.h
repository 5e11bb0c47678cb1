// Background prefetch of blob data (nydusd's `fs_prefetch`): fetching chunks into the blob cache
// before anyone reads them, in the image's prefetch-list order and then whole blobs, without
// ever making a reader wait.
//
// DemandGate orders the two kinds of fetch. A reader's cache miss holds a DemandGate::Demand while
// its fetch runs; a prefetch worker waits, before each piece, until no demand fetch is in flight.
// So prefetch uses only the bandwidth readers leave (a piece already started finishes: at most
// one piece per worker, `piece_bytes`, can be ahead of a reader).
//
// Prefetcher runs `threads` workers over a list of jobs (a target and a range of its chunks),
// cut into pieces of at most `piece_bytes` stored bytes, taken in order. `bandwidth_rate` (bytes
// per second, 0 = unlimited) is a token bucket over all workers. A failed piece is counted and
// skipped (the chunks stay missing; a reader fetches them on demand later); nothing is logged
// here: progress() carries the counts and the last error for the daemon's metrics and log.
//
// Thread-safety: progress() from any thread; stop() (and the destructor, which stops and joins
// the workers) from the owner. Stopping interrupts waits at once; a piece being fetched completes
// first (its fetch has its own deadline).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"

namespace ferry::storage {

class DemandGate {
 public:
  // Held by a reader for the duration of an on-demand fetch.
  class Demand {
   public:
    explicit Demand(DemandGate* gate) : gate_(gate) {}
    ~Demand();
    Demand(Demand&& other) noexcept : gate_(other.gate_) { other.gate_ = nullptr; }
    Demand(const Demand&) = delete;
    Demand& operator=(const Demand&) = delete;
    Demand& operator=(Demand&&) = delete;

   private:
    DemandGate* gate_;
  };

  [[nodiscard]] Demand demand();
  // Returns once no demand fetch is in flight (true), or when `stopping` is set and wake() was
  // called (false).
  bool wait_quiet(const std::atomic<bool>& stopping);
  // Wakes every wait_quiet() so that it rechecks its `stopping` flag.
  void wake();
  [[nodiscard]] unsigned in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  std::atomic<unsigned> in_flight_{0};
  std::mutex mu_;
  std::condition_variable quiet_;
};

// What a prefetch job fills: a blob's chunks (a cached blob source, in the daemon).
class PrefetchTarget {
 public:
  virtual ~PrefetchTarget() = default;
  // Makes chunks [first, first + count) of the blob present (a no-op for those already present).
  virtual Status fill(uint64_t first, uint64_t count) const = 0;
  // Stored bytes of chunk `index` (what fetching it costs).
  [[nodiscard]] virtual uint64_t stored_size(uint64_t index) const = 0;
  [[nodiscard]] virtual uint64_t chunk_count() const = 0;
};

struct PrefetchJob {
  std::shared_ptr<const PrefetchTarget> target;
  uint64_t first = 0;
  uint64_t count = 0;
};

struct PrefetchOptions {
  unsigned threads = 1;
  uint64_t bandwidth_rate = 0;   // bytes per second over all workers; 0: unlimited
  uint64_t piece_bytes = 1 << 20;  // stored bytes fetched per piece (at least one chunk)
};

struct PrefetchProgress {
  uint64_t chunks_total = 0;  // in all jobs (a chunk in two jobs counts twice)
  uint64_t chunks_done = 0;   // filled (fetched, or found present)
  uint64_t bytes_done = 0;    // stored bytes of the chunks done
  uint64_t pieces_failed = 0;
  bool finished = false;      // every piece was tried, or the prefetcher stopped
  std::string last_error;
};

class Prefetcher {
 public:
  // Starts the workers at once. `gate` is shared with the readers of the targets.
  Prefetcher(std::vector<PrefetchJob> jobs, PrefetchOptions options, std::shared_ptr<DemandGate> gate);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  void stop();
  [[nodiscard]] PrefetchProgress progress() const;

 private:
  struct Piece {
    const PrefetchTarget* target;
    uint64_t first;
    uint64_t count;
    uint64_t bytes;
  };
  void work();
  // Waits until `bytes` fit the bandwidth budget; false when stopping.
  bool take_budget(uint64_t bytes);

  std::vector<PrefetchJob> jobs_;  // keeps the targets alive
  std::vector<Piece> pieces_;
  PrefetchOptions options_;
  std::shared_ptr<DemandGate> gate_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> next_{0};
  std::atomic<unsigned> running_{0};
  uint64_t chunks_total_ = 0;
  std::atomic<uint64_t> chunks_done_{0};
  std::atomic<uint64_t> bytes_done_{0};
  std::atomic<uint64_t> pieces_failed_{0};

  mutable std::mutex mu_;            // the budget, the last error, stop waits
  std::condition_variable stop_cv_;  // signalled by stop()
  std::chrono::steady_clock::time_point budget_until_;  // when the bytes taken so far are paid for
  std::string last_error_;
  std::vector<std::thread> workers_;
};

}  // namespace ferry::storage
