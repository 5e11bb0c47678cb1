#include "kit/wait.h"

#include <algorithm>
#include <thread>

namespace ferry::testkit {

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
                std::chrono::microseconds first, std::chrono::microseconds most) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = first;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, most);
  }
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace ferry::testkit
