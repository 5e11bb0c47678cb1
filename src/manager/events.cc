#include "manager/events.h"

#include <array>
#include <utility>

namespace ferry::manager {
namespace {

// The names are part of the system API (GET /api/v1/daemons/records) and of the store: never
// rename one.
constexpr std::array<std::pair<EventKind, std::string_view>, 9> kNames = {{
    {EventKind::kStart, "start"},
    {EventKind::kDeath, "death"},
    {EventKind::kFailover, "failover"},
    {EventKind::kRestart, "restart"},
    {EventKind::kUpgrade, "upgrade"},
    {EventKind::kRollback, "rollback"},
    {EventKind::kFailure, "failure"},
    {EventKind::kReattach, "reattach"},
    {EventKind::kStop, "stop"},
}};

}  // namespace

std::string_view to_string(EventKind kind) {
  for (const auto& [k, name] : kNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::optional<EventKind> parse_event_kind(std::string_view text) {
  for (const auto& [k, name] : kNames) {
    if (name == text) return k;
  }
  return std::nullopt;
}

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ferry::manager
