#include "manager/metrics.h"

#include <charconv>
#include <cmath>
#include <ctime>

namespace ferry::manager {
namespace {

constexpr std::array<double, 13> kBoundsMs = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};

constexpr std::array<EventKind, 9> kAllKinds = {
    EventKind::kStart,    EventKind::kDeath,   EventKind::kFailover, EventKind::kRestart, EventKind::kUpgrade,
    EventKind::kRollback, EventKind::kFailure, EventKind::kReattach, EventKind::kStop,
};

// The kinds that carry a duration worth a histogram, in render order.
constexpr std::array<EventKind, 4> kTimedKinds = {EventKind::kFailover, EventKind::kRestart,
                                                  EventKind::kUpgrade, EventKind::kRollback};

bool is_timed(EventKind kind) {
  for (EventKind k : kTimedKinds) {
    if (k == kind) return true;
  }
  return false;
}

size_t index_of(EventKind kind) {
  return static_cast<size_t>(kind);
}

// Shortest text that reads back as the same double, which Prometheus parses.
std::string format_double(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "0";
  return std::string(buf, end);
}

}  // namespace

// Label values are quoted; a state name comes from outside, so escape what the format needs.
std::string prometheus_label_value(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

ManagerMetrics::ManagerMetrics() : start_time_s_(static_cast<int64_t>(::time(nullptr))) {
  static_assert(kAllKinds.size() == kKinds);
  static_assert(kBoundsMs.size() + 1 == kBuckets);
  // Every histogram exists from the start so a scrape shows zeros rather than no series.
  for (EventKind kind : kTimedKinds) histograms_[kind] = Histogram{};
}

void ManagerMetrics::count(EventKind kind) {
  size_t i = index_of(kind);
  if (i < counts_.size()) counts_[i].fetch_add(1, std::memory_order_relaxed);
}

void ManagerMetrics::observe(EventKind kind, double duration_ms) {
  if (!is_timed(kind) || !std::isfinite(duration_ms)) return;
  // A clock step can make a measured duration negative; it still happened, count it as 0.
  if (duration_ms < 0) duration_ms = 0;
  size_t b = 0;
  while (b < kBoundsMs.size() && duration_ms > kBoundsMs[b]) ++b;
  std::lock_guard lock(mu_);
  Histogram& h = histograms_[kind];
  h.buckets[b] += 1;
  h.sum += duration_ms;
  h.count += 1;
}

uint64_t ManagerMetrics::total(EventKind kind) const {
  size_t i = index_of(kind);
  return i < counts_.size() ? counts_[i].load(std::memory_order_relaxed) : 0;
}

std::string ManagerMetrics::render(const std::map<std::string, int>& daemons_by_state) const {
  std::string out;
  out += "# HELP ferry_daemons Daemons managed by ferry-snapshotter, by state.\n";
  out += "# TYPE ferry_daemons gauge\n";
  for (const auto& [state, n] : daemons_by_state) {
    out += "ferry_daemons{state=\"" + prometheus_label_value(state) + "\"} " + std::to_string(n) + "\n";
  }

  out += "# HELP ferry_events_total Daemon lifecycle events recorded since the manager started, by kind.\n";
  out += "# TYPE ferry_events_total counter\n";
  for (EventKind kind : kAllKinds) {
    out += "ferry_events_total{event=\"" + std::string(to_string(kind)) + "\"} " +
           std::to_string(total(kind)) + "\n";
  }

  out +=
      "# HELP ferry_recovery_duration_ms How long failovers, restarts, upgrades and rollbacks took, in "
      "milliseconds.\n";
  out += "# TYPE ferry_recovery_duration_ms histogram\n";
  {
    std::lock_guard lock(mu_);
    for (EventKind kind : kTimedKinds) {
      const std::string event = std::string(to_string(kind));
      auto it = histograms_.find(kind);
      const Histogram h = it == histograms_.end() ? Histogram{} : it->second;
      uint64_t cumulative = 0;
      for (size_t b = 0; b < h.buckets.size(); ++b) {
        cumulative += h.buckets[b];
        const std::string le = b < kBoundsMs.size() ? format_double(kBoundsMs[b]) : "+Inf";
        out.append("ferry_recovery_duration_ms_bucket{event=\"")
            .append(event)
            .append("\",le=\"")
            .append(le)
            .append("\"} ")
            .append(std::to_string(cumulative))
            .append("\n");
      }
      out += "ferry_recovery_duration_ms_sum{event=\"" + event + "\"} " + format_double(h.sum) + "\n";
      out += "ferry_recovery_duration_ms_count{event=\"" + event + "\"} " + std::to_string(h.count) + "\n";
    }
  }

  out += "# HELP ferry_manager_start_time_seconds When the manager started, in unix seconds.\n";
  out += "# TYPE ferry_manager_start_time_seconds gauge\n";
  out += "ferry_manager_start_time_seconds " + std::to_string(start_time_s_) + "\n";
  return out;
}

}  // namespace ferry::manager
