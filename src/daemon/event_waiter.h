// EventWaiter: the main thread's single wait point: termination signals (through a signalfd)
// and internal events (through an eventfd) such as "the mount went away".
//
// create() blocks the given signals in the calling thread; threads started afterwards inherit
// the mask, so only the waiter ever sees them. notify() is async-signal-safe and thread-safe.
#pragma once

#include <initializer_list>

#include "common/result.h"
#include "common/unique_fd.h"

namespace ferry::daemon {

class EventWaiter {
 public:
  static Result<EventWaiter> create(std::initializer_list<int> signals);

  // Blocks until a signal arrives (returns its number) or notify() is called (returns 0).
  int wait() const;
  void notify() const;

 private:
  EventWaiter(UniqueFd sigfd, UniqueFd eventfd) : sigfd_(std::move(sigfd)), eventfd_(std::move(eventfd)) {}
  UniqueFd sigfd_;
  UniqueFd eventfd_;
};

}  // namespace ferry::daemon
