// PredecessorWatch: runs a function once the process that saved the state this daemon took
// over has exited. It lets a hot standby that has already taken the state over (READY, images
// open, fd in hand) start serving the moment its predecessor dies, without waiting for a
// manager to notice the death and call it: the blackout of a crash is then the kernel's time to
// tear the dead process down plus one resend.
//
// The death is seen through a pidfd (opened before the process's start time is checked, so a
// reused pid is never watched). A process that is gone already, or was never there, counts as
// exited at once.
//
// Thread-safety: cancel() from any thread; the function runs at most once, on the watch's own
// thread, and not at all after cancel(). The destructor cancels and joins: never destroy the
// watch from inside its function.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "common/result.h"
#include "common/unique_fd.h"

namespace ferry::daemon {

class PredecessorWatch {
 public:
  // Watches `pid` (which started at `start_time`, in clock ticks since boot as in
  // /proc/<pid>/stat) and calls `on_exit` once it has exited. Errors: the pidfd or eventfd
  // could not be created (e.g. EMFILE).
  static Result<std::unique_ptr<PredecessorWatch>> start(pid_t pid, uint64_t start_time,
                                                         std::function<void()> on_exit);
  struct Token {};  // only start() constructs
  explicit PredecessorWatch(Token /*unused*/) {}
  ~PredecessorWatch();
  PredecessorWatch(const PredecessorWatch&) = delete;
  PredecessorWatch& operator=(const PredecessorWatch&) = delete;

  // The function will not run (unless it has started already). Does not wait.
  void cancel();

 private:
  void run();

  UniqueFd pidfd_;   // invalid: the process was gone already
  UniqueFd cancel_;  // eventfd
  std::function<void()> on_exit_;
  std::thread thread_;
};

}  // namespace ferry::daemon
