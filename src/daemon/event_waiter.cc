#include "daemon/event_waiter.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace ferry::daemon {

Result<EventWaiter> EventWaiter::create(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return Error{EINVAL, "cannot block signals"};
  UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC));
  if (!sfd) return errno_error("signalfd");
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd) return errno_error("eventfd");
  return EventWaiter(std::move(sfd), std::move(efd));
}

int EventWaiter::wait() const {
  while (true) {
    std::array<pollfd, 2> fds{{{sigfd_.get(), POLLIN, 0}, {eventfd_.get(), POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      if (::read(sigfd_.get(), &info, sizeof info) == sizeof info) return static_cast<int>(info.ssi_signo);
    }
    if ((fds[1].revents & POLLIN) != 0) {
      uint64_t v = 0;
      if (::read(eventfd_.get(), &v, sizeof v) == sizeof v) return 0;
    }
  }
}

void EventWaiter::notify() const {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(eventfd_.get(), &one, sizeof one);
}

}  // namespace ferry::daemon
