// Process file descriptors (pidfd_open(2), pidfd_send_signal(2)): the one place the tree makes
// these system calls (glibc 2.36 has no wrappers for them).
//
// A pidfd names one process for good (no pid-reuse race) and becomes readable when it exits.
//
// Thread-safety: pure system calls.
#pragma once

#include <sys/types.h>

#include "common/result.h"
#include "common/unique_fd.h"

namespace ferry {

// A close-on-exec pidfd for `pid`. ESRCH when no such process exists.
Result<UniqueFd> open_pidfd(pid_t pid);

// Sends `sig` to the process of `pidfd`; ESRCH when it has exited.
Status pidfd_send_signal(int pidfd, int sig);

}  // namespace ferry
