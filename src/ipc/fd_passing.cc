#include "ipc/fd_passing.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace ferry::ipc {
namespace {

// How many fds one recvmsg accepts before the kernel truncates (MSG_CTRUNC). The framing sends
// one; room for a few more lets us tell "a peer attached extras" (closed, reported) apart from
// garbage, without ever leaking what the kernel installed.
constexpr size_t kMaxFdsPerRecv = 8;

std::string budget_text(const Deadline& deadline) {
  return "timed out after " + std::to_string(deadline.budget.count()) + " ms";
}

}  // namespace

Status wait_fd(int fd, short events, const Deadline& deadline, const std::string& what) {
  while (true) {
    std::array<pollfd, 2> fds{};
    fds[0] = pollfd{fd, events, 0};
    nfds_t n = 1;
    if (deadline.cancel_fd >= 0) {
      fds[1] = pollfd{deadline.cancel_fd, POLLIN, 0};
      n = 2;
    }
    auto now = Clock::now();
    int timeout_ms = 0;
    if (deadline.at > now) {
      // Round up so that we never spin on a sub-millisecond remainder.
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline.at - now).count();
      timeout_ms = static_cast<int>(std::min<long long>(left, 3600LL * 1000));
    }
    int r = ::poll(fds.data(), n, timeout_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_error(what + ": poll");
    }
    // Cancellation wins over readiness: a caller that cancels wants out now.
    if (n == 2 && fds[1].revents != 0) return Error{ECANCELED, what + ": cancelled"};
    if (fds[0].revents & POLLNVAL) return Error{EBADF, what + ": fd " + std::to_string(fd) + " is not open"};
    if (fds[0].revents != 0) return ok_status();
    if (deadline.expired()) return Error{ETIMEDOUT, what + ": " + budget_text(deadline)};
  }
}

Status send_with_fd(int sock, int fd, std::span<const std::byte> data, const Deadline& deadline) {
  if (data.empty()) {
    // Linux drops SCM_RIGHTS sent with zero bytes on a stream socket; refuse instead of
    // pretending the fd went out.
    return Error{EINVAL, "cannot send an fd with no bytes: a stream socket carries an fd only with data"};
  }
  if (::fcntl(fd, F_GETFD) < 0)
    return Error{EBADF, "the fd to send (" + std::to_string(fd) + ") is not open"};

  // alignas: the buffer is read through cmsghdr pointers.
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
  while (true) {
    iovec iov{const_cast<std::byte*>(data.data()), data.size()};  // sendmsg does not write it
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));

    ssize_t n = ::sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      // The fd went out attached to the first skb; everything after is plain data.
      return send_all(sock, data.subspan(static_cast<size_t>(n)), deadline);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      FERRY_TRY(wait_fd(sock, POLLOUT, deadline, "waiting to send the fd"));
      continue;
    }
    if (n == 0) return Error{EIO, "sendmsg with an fd sent nothing"};
    return errno_error("sendmsg with an fd");
  }
}

Status send_all(int sock, std::span<const std::byte> data, const Deadline& deadline) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(sock, data.data() + done, data.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      FERRY_TRY(wait_fd(sock, POLLOUT, deadline,
                        "waiting for the peer to read (" + std::to_string(done) + " of " +
                            std::to_string(data.size()) + " bytes sent)"));
      continue;
    }
    if (n == 0) return Error{EIO, "send made no progress"};
    return errno_error("sending (" + std::to_string(done) + " of " + std::to_string(data.size()) +
                       " bytes sent)");
  }
  return ok_status();
}

Result<Chunk> recv_with_fd(int sock, std::span<std::byte> buf, const Deadline& deadline) {
  if (buf.empty()) return Error{EINVAL, "recv_with_fd needs a non-empty buffer"};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFdsPerRecv)> control{};
  while (true) {
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n = ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        FERRY_TRY(wait_fd(sock, POLLIN, deadline, "waiting for data"));
        continue;
      }
      return errno_error("recvmsg");
    }

    // Take ownership of every fd the kernel installed before looking at anything else, so that
    // no error path below can leak one.
    Chunk chunk;
    chunk.size = static_cast<size_t>(n);
    for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
      if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* data = CMSG_DATA(cmsg);
      for (size_t i = 0; i < count; ++i) {
        int received = -1;
        std::memcpy(&received, data + i * sizeof(int), sizeof(int));
        UniqueFd owned(received);
        if (!chunk.fd.valid()) {
          chunk.fd = std::move(owned);
        } else {
          ++chunk.extra_fds_closed;  // `owned` closes it here
        }
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) {
      // The kernel dropped (and closed) fds or other control data that did not fit; what we
      // got cannot be trusted to be what the peer meant. `chunk` closes what did arrive.
      return Error{EPROTO, "the peer sent more control data (fds) than the protocol allows (MSG_CTRUNC)"};
    }
    return chunk;
  }
}

}  // namespace ferry::ipc
