#include "daemon/scheduling.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

namespace ferry::daemon {

void restore_serving_priority() {
  const char* wanted = std::getenv("FERRY_SERVING_NICE");
  if (wanted == nullptr) return;
  char* end = nullptr;
  const long nice = std::strtol(wanted, &end, 10);
  if (end == wanted || *end != '\0' || nice < -20 || nice > 19) {
    spdlog::warn("ignoring FERRY_SERVING_NICE='{}': not a nice value (-20..19)", wanted);
    return;
  }
  errno = 0;
  if (::getpriority(PRIO_PROCESS, 0) == nice && errno == 0) return;  // already there
  int moved = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const auto tid = static_cast<id_t>(std::strtoul(task.path().filename().c_str(), nullptr, 10));
    if (tid == 0) continue;
    if (::setpriority(PRIO_PROCESS, tid, static_cast<int>(nice)) == 0) {
      ++moved;
    } else if (errno != ESRCH) {
      spdlog::warn("cannot set thread {} to nice {}: {}", tid, nice, std::strerror(errno));
    }
  }
  if (ec) spdlog::warn("cannot list /proc/self/task to restore the serving priority: {}", ec.message());
  spdlog::info("serving: {} threads back to nice {}", moved, nice);
}

}  // namespace ferry::daemon
