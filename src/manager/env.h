// Env: what DaemonManager needs from the world outside its own bookkeeping, in one place a unit
// test can replace (the way LevelDB's Env stands between the database and the filesystem):
// starting and adopting daemon processes (and, through DaemonProcess, signalling, waiting for
// and killing them), talking to a daemon's API, and time: the clock, the short pauses of a
// poll, and the backoff between recovery attempts.
//
// Env::system() is the real one: posix_spawn and pidfds (DaemonProcess), HTTP over the API
// socket (DaemonClient), std::chrono::steady_clock and real sleeps. A test Env may hand out
// processes whose "pidfd" is any fd that turns readable at their end (DeathWatcher only polls
// it), daemons that answer from memory, and a clock that moves only when the manager waits.
//
// What stays real under every Env: the supervisor sockets (ipc::Supervisor), the records
// (ManagerStore), files under the manager's root and the mount table.
//
// Thread-safety: every method may be called from any thread; an Env must outlive the
// DaemonManager that uses it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "manager/daemon_api.h"
#include "manager/daemon_process.h"

namespace ferry::manager {

class Env {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~Env() = default;

  // DaemonProcess::spawn(argv, log_file, {}, idle_priority): argv[0] is the binary.
  virtual Result<DaemonProcess> spawn(const std::vector<std::string>& argv, const std::string& log_file,
                                      bool idle_priority) = 0;
  // DaemonProcess::adopt(pid, start_time).
  virtual Result<DaemonProcess> adopt(pid_t pid, uint64_t start_time) = 0;
  // The API of the daemon listening at `socket`; `label` names it in error messages.
  virtual std::unique_ptr<DaemonApi> api(const std::string& socket, const std::string& label) = 0;

  virtual Clock::time_point now() = 0;
  // A pause between two polls.
  virtual void sleep_for(std::chrono::microseconds pause) = 0;
  // A backoff: waits on `cv` (with `lock` held on its mutex) until `stop()` holds or `delay`
  // has passed. True when stopped.
  virtual bool wait_unless(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                           std::chrono::milliseconds delay, const std::function<bool()>& stop) = 0;

  // The real one (a process-wide instance).
  static Env& system();
};

// Milliseconds from `since` to env.now(), for event durations.
double ms_since(Env& env, Env::Clock::time_point since);

}  // namespace ferry::manager
