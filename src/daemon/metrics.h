// DaemonMetrics: request counters and the in-flight table, fed by the FUSE server on the hot
// path (a RequestObserver) and read by the HTTP API.
//
// Hot-path cost: relaxed atomic increments, two clock reads and a per-thread slot write; no
// lock and no allocation, except the per-image counters found under a shared lock.
// Thread-safety: on_begin/on_end from any worker thread; snapshots from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string>

#include "fuse/server/fuse_server.h"

namespace ferry::daemon {

struct Counters {
  std::array<std::atomic<uint64_t>, 64> by_opcode{};
  std::atomic<uint64_t> other_opcodes{0};
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> errors{0};
  // Latency buckets: upper bounds in microseconds; the last counts everything slower.
  static constexpr std::array<uint64_t, 12> kBucketsUs = {10,   25,   50,    100,   250,    500,
                                                          1000, 2500, 10000, 50000, 250000, 1000000};
  std::array<std::atomic<uint64_t>, kBucketsUs.size() + 1> latency{};

  void record(uint32_t opcode, int error, uint64_t bytes, uint64_t micros);
  [[nodiscard]] nlohmann::json to_json() const;
};

class DaemonMetrics final : public fuse::RequestObserver {
 public:
  void on_begin(uint32_t opcode, uint64_t nodeid, uint64_t unique) override;
  void on_end(uint32_t opcode, int error, uint64_t bytes) override;

  void add_image(uint32_t slot);
  void remove_image(uint32_t slot);
  [[nodiscard]] nlohmann::json totals() const { return total_.to_json(); }
  // Counters of one image slot; null json when unknown.
  [[nodiscard]] nlohmann::json image(uint32_t slot) const;
  // Requests being served now: [{"inode","opcode","unique","timestamp_secs"}].
  [[nodiscard]] nlohmann::json inflight() const;

  // A test-only stall: READ requests for this node id never complete (see --help of ferryd).
  void set_stall_node(uint64_t nodeid) { stall_node_.store(nodeid); }
  // The slot that counts a node id's requests (the root's slot for node 1).
  void set_root_slot(uint32_t slot) { root_slot_.store(slot); }

 private:
  struct InflightSlot {
    std::atomic<uint64_t> unique{0};  // 0 = idle
    std::atomic<uint64_t> nodeid{0};
    std::atomic<uint32_t> opcode{0};
    std::atomic<int64_t> started_unix_s{0};
    std::atomic<uint64_t> started_ns{0};  // steady clock
    std::atomic<uint32_t> slot{0};
  };
  static constexpr size_t kMaxThreads = 256;
  InflightSlot& my_slot();

  Counters total_;
  mutable std::shared_mutex images_mu_;
  std::map<uint32_t, std::unique_ptr<Counters>> images_;
  std::array<InflightSlot, kMaxThreads> inflight_{};
  std::atomic<size_t> next_thread_{0};
  std::atomic<uint64_t> stall_node_{0};
  std::atomic<uint32_t> root_slot_{0};
};

}  // namespace ferry::daemon
