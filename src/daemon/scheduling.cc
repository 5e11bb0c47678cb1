#include "daemon/scheduling.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

namespace ferry::daemon {

namespace {

// FERRY_SERVING_NICE, if set and valid.
std::optional<int> serving_nice() {
  const char* wanted = std::getenv("FERRY_SERVING_NICE");
  if (wanted == nullptr) return std::nullopt;
  char* end = nullptr;
  const long nice = std::strtol(wanted, &end, 10);
  if (end == wanted || *end != '\0' || nice < -20 || nice > 19) {
    spdlog::warn("ignoring FERRY_SERVING_NICE='{}': not a nice value (-20..19)", wanted);
    return std::nullopt;
  }
  return static_cast<int>(nice);
}

// Sets thread `tid` to `nice`; false with errno on failure (ESRCH: it is gone).
bool serve_at(id_t tid, int nice) {
  return ::setpriority(PRIO_PROCESS, tid, nice) == 0;
}

// Sets every thread of this process to `nice`; the number of threads moved. Repeated until a
// pass finds nothing to move: a thread still at the old nice may be creating a thread (an HTTP
// connection's, say) while a pass lists the others, and the new thread inherits the old nice
// without being in that listing.
int set_every_thread_nice(int nice) {
  int moved = 0;
  for (int pass = 0; pass < 10; ++pass) {
    int moved_now = 0;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
      const auto tid = static_cast<id_t>(std::strtoul(task.path().filename().c_str(), nullptr, 10));
      if (tid == 0) continue;
      errno = 0;
      const int current = ::getpriority(PRIO_PROCESS, tid);
      if (errno == 0 && current == nice) continue;
      if (serve_at(tid, nice)) {
        ++moved_now;
      } else if (errno != ESRCH) {
        spdlog::warn("cannot set thread {} to nice {}: {}", tid, nice, std::strerror(errno));
      }
    }
    if (ec) spdlog::warn("cannot list /proc/self/task to set nice {}: {}", nice, ec.message());
    moved += moved_now;
    if (moved_now == 0 || ec) break;
  }
  return moved;
}

}  // namespace

void restore_serving_priority_of_this_thread() {
  auto nice = serving_nice();
  if (!nice) return;
  if (!serve_at(static_cast<id_t>(::gettid()), *nice)) {
    spdlog::warn("cannot set thread {} to nice {}: {}", ::gettid(), *nice, std::strerror(errno));
  }
}

void restore_serving_priority() {
  auto wanted_nice = serving_nice();
  if (!wanted_nice) return;
  // Once per process. Not judged by the calling thread's nice: a standby's watch thread is at
  // the serving nice from the start while the workers it starts are not.
  static std::atomic<bool> restored{false};
  if (restored.exchange(true)) return;
  const int moved = set_every_thread_nice(*wanted_nice);
  spdlog::info("serving: {} threads back to nice {}", moved, *wanted_nice);
}

void yield_cpu_for_exit() {
  const int moved = set_every_thread_nice(kLeavingNice);
  spdlog::debug("leaving: {} threads to nice {}", moved, kLeavingNice);
}

}  // namespace ferry::daemon
