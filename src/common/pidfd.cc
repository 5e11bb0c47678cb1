#include "common/pidfd.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ferry {

Result<UniqueFd> open_pidfd(pid_t pid) {
  // pidfds are close-on-exec always (pidfd_open(2)); flags 0.
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)));
  if (!fd) {
    const int err = errno;
    return errno_error(err, "pidfd_open(" + std::to_string(pid) + ")");
  }
  return fd;
}

Status pidfd_send_signal(int pidfd, int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0U) != 0) {
    const int err = errno;
    return errno_error(err, "pidfd_send_signal(" + std::to_string(sig) + ")");
  }
  return ok_status();
}

}  // namespace ferry
