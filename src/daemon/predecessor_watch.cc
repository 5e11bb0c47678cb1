#include "daemon/predecessor_watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "common/pidfd.h"
#include "common/proc_files.h"
#include "daemon/scheduling.h"

namespace ferry::daemon {

Result<std::unique_ptr<PredecessorWatch>> PredecessorWatch::start(pid_t pid, uint64_t start_time,
                                                                  std::function<void()> on_exit) {
  auto w = std::make_unique<PredecessorWatch>(Token{});
  w->cancel_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!w->cancel_) return errno_error("watching the previous daemon: eventfd");
  if (pid > 0) {
    auto pidfd = open_pidfd(pid);
    if (!pidfd && pidfd.error().code != ESRCH) {
      return std::move(pidfd).error().context("watching the previous daemon");
    }
    // Opened first, checked second: if the start time still matches, the pidfd is that process.
    if (pidfd && live_process_start_time(pid) == start_time) w->pidfd_ = std::move(*pidfd);
  }
  w->on_exit_ = std::move(on_exit);
  w->thread_ = std::thread([raw = w.get()] { raw->run(); });
  return w;
}

PredecessorWatch::~PredecessorWatch() {
  cancel();
  if (thread_.joinable()) thread_.join();
}

void PredecessorWatch::cancel() {
  const uint64_t one = 1;
  while (::write(cancel_.get(), &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void PredecessorWatch::run() {
  restore_serving_priority_of_this_thread();
  pollfd fds[2] = {{cancel_.get(), POLLIN, 0}, {pidfd_ ? pidfd_.get() : -1, POLLIN, 0}};
  if (pidfd_) {
    // A pidfd turns readable when the whole process has exited (a zombie at most): by then no
    // thread of it can still take a request from the FUSE device.
    while (::poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
  } else {
    while (::poll(fds, 1, 0) < 0 && errno == EINTR) {
    }
  }
  if (fds[0].revents != 0) return;
  on_exit_();
}

}  // namespace ferry::daemon
