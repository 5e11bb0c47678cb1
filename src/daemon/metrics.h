// DaemonMetrics: request counters and the in-flight table, fed by the FUSE server on the hot
// path (a RequestObserver) and read by the HTTP API.
//
// What a request costs here, exactly: on_begin() writes the worker's in-flight slot (node,
// opcode, start second from time(2), which the vDSO answers from a coarse clock without a
// syscall; the unique last, with release) in the worker's own cache lines; on_end() clears
// the slot and adds to the worker's own counters (plain load + store of relaxed atomics, no
// read-modify-write: each counter has one writer) and to the image's counters for that worker,
// found in an immutable slot table under an EpochDomain guard (one store and a fence, no
// lock). Every 64th request of a worker is also timed with the steady clock for the latency
// histogram, which therefore counts a sample ("latency_sample_every"); no other request reads
// a clock beyond time(2). Readers of the metrics sum the workers' counters: a snapshot taken
// while requests run may be a few requests behind, never torn within one counter.
//
// Thread-safety: on_begin/on_end from the server's workers (worker index < the count given at
// construction; larger indices share slots modulo it); add_image/remove_image and every
// snapshot from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/epoch_domain.h"
#include "fuse/server/fuse_server.h"

namespace ferry::daemon {

// One writer's counters (a worker's, for the totals or for one image). alignas: a worker's
// counters never share a cache line with another worker's.
struct alignas(64) Counters {
  std::array<std::atomic<uint64_t>, 64> by_opcode{};
  std::atomic<uint64_t> other_opcodes{0};
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> errors{0};
  // Latency buckets: upper bounds in microseconds; the last counts everything slower.
  static constexpr std::array<uint64_t, 12> kBucketsUs = {10,   25,   50,    100,   250,    500,
                                                          1000, 2500, 10000, 50000, 250000, 1000000};
  std::array<std::atomic<uint64_t>, kBucketsUs.size() + 1> latency{};

  // Only the owning worker calls these. `data_bytes`: file data the reply carried.
  void record(uint32_t opcode, int error, uint64_t data_bytes);
  void record_latency(uint64_t micros);
};

// The sum of several writers' counters.
struct CounterTotals {
  std::array<uint64_t, 64> by_opcode{};
  uint64_t other_opcodes = 0;
  uint64_t bytes_read = 0;
  uint64_t errors = 0;
  std::array<uint64_t, Counters::kBucketsUs.size() + 1> latency{};

  void add(const Counters& c);
  [[nodiscard]] nlohmann::json to_json() const;
};

// Lazily fetched blobs (registry backend), per blob digest, summed over the open devices of
// that blob: {"sha256:..": {"source", "requests", "bytes_fetched", "failures", "latency_us_total"
// (of the successful requests), "latency_us_max", "latency_histogram": [{"le_ms", "count"}]}}. Empty when none is open.
nlohmann::json remote_blob_metrics();

// The blob caches of the open images, per cache data file: {"<data path>": {"hits", "misses",
// "bytes_fetched", "fetch_requests", "chunks_present", "chunks_total", "corrupt_refetched"}}, and
// their background prefetches: [{"chunks_total", "chunks_done", "bytes_done", "pieces_failed",
// "finished", "last_error"}]. Empty when there is none.
nlohmann::json blob_cache_metrics();
nlohmann::json prefetch_metrics();

class DaemonMetrics final : public fuse::RequestObserver {
 public:
  static constexpr uint64_t kLatencySampleEvery = 64;

  explicit DaemonMetrics(unsigned workers = fuse::kMaxWorkers);

  void on_begin(unsigned worker, uint32_t opcode, uint64_t nodeid, uint64_t unique) override;
  void on_end(unsigned worker, uint32_t opcode, int error, uint64_t data_bytes) override;

  void add_image(uint32_t slot);
  void remove_image(uint32_t slot);
  [[nodiscard]] nlohmann::json totals() const;
  // Counters of one image slot; null json when unknown.
  [[nodiscard]] nlohmann::json image(uint32_t slot) const;
  // Requests being served now: [{"inode","opcode","unique","timestamp_secs"}].
  [[nodiscard]] nlohmann::json inflight() const;

  // The slot that counts a node id's requests (the root's slot for node 1).
  void set_root_slot(uint32_t slot) { root_slot_.store(slot); }

 private:
  // A worker's own state: written by that worker only.
  struct alignas(64) Worker {
    std::atomic<uint64_t> unique{0};  // 0 = idle
    std::atomic<uint64_t> nodeid{0};
    std::atomic<uint32_t> opcode{0};
    std::atomic<uint32_t> slot{0};
    std::atomic<int64_t> started_unix_s{0};
    std::atomic<uint64_t> requests{0};           // the worker's own count, for sampling
    std::atomic<uint64_t> sample_started_ns{0};  // steady clock, when this request is sampled (else 0)
    Counters total;
  };
  // One image's counters, one block per worker.
  struct ImageCounters {
    uint32_t slot = 0;
    std::unique_ptr<Counters[]> per_worker;
  };
  // Immutable once published; sorted by slot.
  struct ImageTable {
    std::vector<std::shared_ptr<const ImageCounters>> images;
    [[nodiscard]] const ImageCounters* find(uint32_t slot) const;
  };
  [[nodiscard]] unsigned index(unsigned worker) const { return worker % workers_count_; }
  void publish_locked(ImageTable next);

  const unsigned workers_count_;
  std::unique_ptr<Worker[]> workers_;
  std::atomic<uint32_t> root_slot_{0};

  mutable EpochDomain epochs_;
  std::atomic<const ImageTable*> table_;  // what workers read; == current_.get()
  mutable std::mutex mu_;                 // writers
  std::shared_ptr<const ImageTable> current_;
};

}  // namespace ferry::daemon
