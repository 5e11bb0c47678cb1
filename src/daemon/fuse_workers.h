// FuseWorkers: the daemon's request loop. N threads read requests from one FuseSession and
// hand them to the FuseServer; this is the only place transport and protocol meet.
//
// Stopping is cooperative: stop() sets a flag and interrupts each thread's blocking read with
// SIGUSR1 until every thread has left its loop. A thread that holds a request finishes and
// answers it first, so a planned hand-over loses nothing.
//
// Thread-safety: start()/stop() from one controlling thread. Each worker owns its buffers;
// the hot path allocates nothing and takes no lock.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "fuse/server/fuse_server.h"
#include "fuse/transport/fuse_session.h"

namespace ferry::daemon {

class FuseWorkers {
 public:
  // `on_unmounted` runs (once, on a worker thread) when the kernel connection goes away.
  FuseWorkers(const fuse::FuseSession& session, fuse::FuseServer& server, std::function<void()> on_unmounted);
  ~FuseWorkers();
  FuseWorkers(const FuseWorkers&) = delete;
  FuseWorkers& operator=(const FuseWorkers&) = delete;

  // Installs the SIGUSR1 handler used to interrupt reads. Call once per process, early.
  static void install_wakeup_signal();

  void start(unsigned threads);
  // Stops and joins every worker; requests in their hands are answered first.
  void stop();
  [[nodiscard]] bool running() const { return !threads_.empty(); }

 private:
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void run(Worker& self);

  const fuse::FuseSession& session_;
  fuse::FuseServer& server_;
  std::function<void()> on_unmounted_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> unmounted_reported_{false};
  std::vector<std::unique_ptr<Worker>> threads_;
};

}  // namespace ferry::daemon
