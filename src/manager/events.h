// What the manager records about its daemons' lives: one EventRecord per death, failover,
// restart, upgrade, rollback or failure. Stored in ManagerStore, served at
// GET /api/v1/daemons/records, counted in ManagerMetrics.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::manager {

enum class EventKind {
  kStart,     // a daemon was started for a mount (new_pid)
  kDeath,     // a daemon process was found dead (old_pid); detail: exit status or signal
  kFailover,  // a successor took over the dead daemon's state (old_pid -> new_pid)
  kRestart,   // a fresh daemon replaced a dead one and its images were attached again
  kUpgrade,   // a hot upgrade replaced old_pid by new_pid running another binary
  kRollback,  // an upgrade failed after the old daemon had exited; the old binary took over again
  kFailure,   // an attempt (failover, restart, upgrade, reattach) failed; detail says what and why
  kReattach,  // a restarted manager found the daemon alive and watches it again
  kStop,      // the daemon was stopped on purpose (last mount removed)
};

// Wall-clock time for records (unix milliseconds). Durations: ms_since() in env.h.
int64_t unix_now_ms();

std::string_view to_string(EventKind kind);  // "start", "death", "failover", ...
std::optional<EventKind> parse_event_kind(std::string_view text);

struct EventRecord {
  int64_t seq = 0;      // assigned by the store, increasing
  int64_t time_ms = 0;  // unix time in milliseconds
  std::string daemon_id;
  EventKind kind = EventKind::kDeath;
  int64_t old_pid = 0;  // 0 when not applicable
  int64_t new_pid = 0;
  double duration_ms = 0;  // how long the action took (0 when not applicable)
  bool ok = true;          // false for kFailure (and for a rollback that also failed)
  std::string detail;      // a sentence a person can act on
};

}  // namespace ferry::manager
