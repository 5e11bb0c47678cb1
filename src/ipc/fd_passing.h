// Byte streams with one file descriptor attached, over connected AF_UNIX SOCK_STREAM sockets.
//
// This is the transport under the supervisor framing (supervisor_wire.h): a /dev/fuse fd rides
// as SCM_RIGHTS ancillary data on the FIRST sendmsg of a stream, the rest of the bytes follow
// as plain data. Facts of Linux that shape the API:
//   - Ancillary data needs at least one byte of payload on a stream socket: a zero-byte
//     sendmsg with SCM_RIGHTS returns 0 and silently drops the fd. So an fd can only be sent
//     together with a non-empty span (send_with_fd() refuses an empty one).
//   - SCM_RIGHTS installs a new descriptor in the receiver that refers to the SAME open file
//     (the same struct file, shared offset, same FUSE connection). The sender keeps its own fd.
//   - When the receiver's control buffer is too small the kernel sets MSG_CTRUNC and closes the
//     fds that did not fit; we treat that as a protocol error.
//
// Contract:
//   - Every call takes a Deadline: an absolute time plus an optional cancel fd (an eventfd, a
//     pipe or a signalfd). Waiting stops with ETIMEDOUT when the time passes and ECANCELED when
//     the cancel fd becomes readable (it is polled, never read). Sockets may be blocking or not:
//     I/O uses MSG_DONTWAIT after poll(2), so no call blocks past the deadline.
//   - EINTR is retried everywhere. Sends use MSG_NOSIGNAL: a vanished peer is an EPIPE error,
//     never a SIGPIPE.
//   - Received fds are always close-on-exec (MSG_CMSG_CLOEXEC) and owned by a UniqueFd at once.
//   - Functions are stateless and thread-compatible: concurrent calls on DIFFERENT sockets are
//     fine; concurrent calls on one socket interleave bytes, as with write(2).
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace ferry::ipc {

using Clock = std::chrono::steady_clock;

// When to give up waiting: an absolute point in time, and optionally an fd whose readability
// cancels the wait (owned by the caller; it must outlive every call using the Deadline).
struct Deadline {
  Clock::time_point at;
  int cancel_fd = -1;
  std::chrono::milliseconds budget{0};  // the timeout it was made from, for error messages

  static Deadline after(std::chrono::milliseconds timeout, int cancel_fd = -1) {
    return Deadline{Clock::now() + timeout, cancel_fd, timeout};
  }
  [[nodiscard]] bool expired() const { return Clock::now() >= at; }
};

// Waits until `fd` reports one of `events` (POLLIN, POLLOUT; POLLHUP/POLLERR always count as
// ready so the caller's next syscall reports what happened). Errors: ETIMEDOUT or ECANCELED,
// both prefixed with `what` ("waiting for the supervisor to connect: timed out after 5000 ms").
Status wait_fd(int fd, short events, const Deadline& deadline, const std::string& what);

// Sends all of `data`; the first sendmsg carries `fd` as SCM_RIGHTS (exactly once, however
// many sendmsg calls the data needs). `data` must not be empty (EINVAL): see above.
Status send_with_fd(int sock, int fd, std::span<const std::byte> data, const Deadline& deadline);

// Sends all of `data` as plain bytes.
Status send_all(int sock, std::span<const std::byte> data, const Deadline& deadline);

struct Chunk {
  size_t size = 0;              // bytes stored at the front of the buffer; 0 means end of stream
  UniqueFd fd;                  // the fd attached to these bytes, if any
  size_t extra_fds_closed = 0;  // fds beyond the first that arrived with them (already closed)
};

// One recvmsg once the socket is readable: up to buf.size() bytes (buf must not be empty) and
// at most one fd. Errors: deadline (ETIMEDOUT/ECANCELED), EPROTO when the kernel truncated the
// control data (MSG_CTRUNC: more fds than we accept in one go; all received ones are closed),
// and the socket's own errors (ECONNRESET when the peer closed with our data unread).
Result<Chunk> recv_with_fd(int sock, std::span<std::byte> buf, const Deadline& deadline);

}  // namespace ferry::ipc
