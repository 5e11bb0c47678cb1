#include "manager/env.h"

#include <thread>

#include "manager/daemon_client.h"

namespace ferry::manager {
namespace {

class SystemEnv final : public Env {
 public:
  Result<DaemonProcess> spawn(const std::vector<std::string>& argv, const std::string& log_file,
                              bool idle_priority) override {
    return DaemonProcess::spawn(argv, log_file, {}, idle_priority);
  }
  Result<DaemonProcess> adopt(pid_t pid, uint64_t start_time) override {
    return DaemonProcess::adopt(pid, start_time);
  }
  std::unique_ptr<DaemonApi> api(const std::string& socket, const std::string& label) override {
    return std::make_unique<DaemonClient>(socket, label);
  }
  Clock::time_point now() override { return Clock::now(); }
  void sleep_for(std::chrono::microseconds pause) override { std::this_thread::sleep_for(pause); }
  bool wait_unless(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                   std::chrono::milliseconds delay, const std::function<bool()>& stop) override {
    return cv.wait_for(lock, delay, stop);
  }
};

}  // namespace

Env& Env::system() {
  static SystemEnv env;
  return env;
}

double ms_since(Env& env, Env::Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(env.now() - since).count();
}

}  // namespace ferry::manager
