// ManagerMetrics: the manager's counters, rendered as Prometheus text for GET /metrics.
//
//   ferry_daemons{state="RUNNING"} 3          gauge, one line per state given to render()
//   ferry_events_total{event="failover"} 12   counter per EventKind (all kinds, 0 included)
//   ferry_recovery_duration_ms_bucket{event="failover",le="1"} ...   histogram per recovery
//   ferry_recovery_duration_ms_sum / _count   kind (failover, restart, upgrade, rollback),
//                                             buckets 1 2 5 10 20 50 100 200 500 1000 2000
//                                             5000 10000 +Inf (milliseconds)
//   ferry_manager_start_time_seconds <unix time>
//
// Thread-safety: all methods may be called concurrently (atomics + a mutex for the histogram).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "manager/events.h"

namespace ferry::manager {

// A label value as the text format quotes it (backslash, double quote and newline escaped).
std::string prometheus_label_value(const std::string& text);

class ManagerMetrics {
 public:
  ManagerMetrics();
  // Counts one event of `kind`.
  void count(EventKind kind);
  // Records the duration of a recovery or upgrade (kFailover, kRestart, kUpgrade, kRollback;
  // other kinds are ignored).
  void observe(EventKind kind, double duration_ms);
  [[nodiscard]] uint64_t total(EventKind kind) const;
  // Prometheus text exposition format (version 0.0.4). `daemons_by_state` maps a state name
  // ("RUNNING", "DEAD", ...) to how many daemons are in it.
  [[nodiscard]] std::string render(const std::map<std::string, int>& daemons_by_state) const;

 private:
  static constexpr int kKinds = 9;  // EventKind values
  static constexpr int kBuckets = 14;
  std::array<std::atomic<uint64_t>, kKinds> counts_{};
  mutable std::mutex mu_;
  struct Histogram {
    std::array<uint64_t, kBuckets> buckets{};  // cumulative when rendered
    double sum = 0;
    uint64_t count = 0;
  };
  std::map<EventKind, Histogram> histograms_;
  int64_t start_time_s_ = 0;
};

}  // namespace ferry::manager
