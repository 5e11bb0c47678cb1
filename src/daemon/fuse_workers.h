// FuseWorkers: the daemon's request loop. N threads read requests from one FuseSession and
// hand them to the FuseServer; this is the only place transport and protocol meet.
//
// The threads can be created ahead of time (prepare()): they allocate their buffers and park
// until start() hands them the session. A successor waiting in INIT does this before any
// takeover, so that creating threads and their malloc arenas is not part of a failover.
//
// Stopping is cooperative: quiesce() (and stop(), which then joins) sets a flag and interrupts
// each thread's blocking read with SIGUSR1 until every thread has left its loop. A thread that
// holds a request finishes and answers it first, so a planned hand-over loses nothing; an
// interrupted read takes nothing from the kernel's queue.
//
// Thread-safety: prepare()/start()/quiesce()/stop() from one controlling thread at a time (the daemon
// serialises them). Each worker owns its buffers and its worker index (0 .. threads-1, at most
// fuse::kMaxWorkers), which it passes to FuseServer::handle; the loop allocates nothing and
// takes no lock: read(2), handle, writev(2).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fuse/server/fuse_server.h"
#include "fuse/transport/fuse_session.h"

namespace ferry::daemon {

class FuseWorkers {
 public:
  // `on_unmounted` runs (once, on a worker thread) when the kernel connection goes away.
  FuseWorkers(fuse::FuseServer& server, std::function<void()> on_unmounted);
  ~FuseWorkers();
  FuseWorkers(const FuseWorkers&) = delete;
  FuseWorkers& operator=(const FuseWorkers&) = delete;

  // Installs the SIGUSR1 handler used to interrupt reads. Call once per process, early.
  static void install_wakeup_signal();

  // Creates `threads` parked workers (nothing if workers exist already).
  void prepare(unsigned threads);
  // Serves `session` (which must outlive the workers' run, i.e. until stop()) with the prepared
  // workers, creating them first if prepare() was not called.
  void start(const fuse::FuseSession& session, unsigned threads);
  // Stops and joins every worker, parked or serving; requests in their hands are answered first.
  void stop();
  // Returns once every worker has answered what it held and left its loop; they are not joined
  // (stop(), the next prepare() or the destructor does that), so a process that ends right
  // after does not wait for its threads' own exits.
  void quiesce();

 private:
  struct Worker {
    unsigned index = 0;  // the server's worker index: per-worker state is kept by it
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void run(Worker& self);
  void mark_done(Worker& self);  // the thread's last act: wakes quiesce()

  fuse::FuseServer& server_;
  std::function<void()> on_unmounted_;
  std::atomic<const fuse::FuseSession*> session_{nullptr};
  std::atomic<bool> released_{false};  // parked workers may serve session_
  std::atomic<bool> stopping_{false};
  std::atomic<bool> unmounted_reported_{false};
  std::vector<std::unique_ptr<Worker>> threads_;
  std::mutex done_mu_;  // with done_cv_: quiesce() waits for the workers' done flags
  std::condition_variable done_cv_;
};

}  // namespace ferry::daemon
