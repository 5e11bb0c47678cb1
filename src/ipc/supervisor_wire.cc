#include "ipc/supervisor_wire.h"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <memory>

#include "ipc/unix_socket.h"

namespace ferry::ipc {
namespace {

constexpr size_t kFirstChunk = size_t{64} << 10;
constexpr size_t kLargestChunk = size_t{4} << 20;
// While waiting for the peer to consume our bytes there is no event for "send queue drained",
// so the queue is sampled this often (a peer that closes wakes us at once).
constexpr auto kDrainPoll = std::chrono::milliseconds(5);

// Bytes we sent that the peer has not read yet (for unix sockets: memory still charged to us).
Result<int> unread_by_peer(int conn) {
  int queued = 0;
  if (::ioctl(conn, SIOCOUTQ, &queued) != 0) return errno_error("SIOCOUTQ");
  return queued;
}

Status pending_socket_error(int conn) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(conn, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno_error("SO_ERROR");
  if (err == ECONNRESET) return Error{err, "the peer closed the connection before reading everything"};
  if (err != 0) return errno_error(err, "connection failed");
  return ok_status();
}

// After shutdown(SHUT_WR): succeed once the peer has closed (EOF) or consumed all our bytes.
Status wait_consumed(int conn, size_t total, const Deadline& deadline) {
  std::array<std::byte, 4096> sink{};
  while (true) {
    FERRY_ASSIGN(int queued, unread_by_peer(conn));
    if (queued == 0) {
      // The unread-byte counter also drops to zero when a peer that closed without reading
      // has its queue purged; the kernel records ECONNRESET for us BEFORE that purge.
      return pending_socket_error(conn);
    }
    Deadline slice{std::min(deadline.at, Clock::now() + kDrainPoll), deadline.cancel_fd, deadline.budget};
    Status ready = wait_fd(conn, POLLIN, slice, "");
    if (!ready.ok()) {
      if (ready.error().code == ECANCELED) return Error{ECANCELED, "waiting for the peer to read: cancelled"};
      if (ready.error().code != ETIMEDOUT) return ready;
      if (deadline.expired()) {
        return Error{ETIMEDOUT, "the peer did not read the whole message (" + std::to_string(queued) +
                                    " of about " + std::to_string(total) + " bytes still queued) within " +
                                    std::to_string(deadline.budget.count()) + " ms"};
      }
      continue;
    }
    ssize_t n = ::recv(conn, sink.data(), sink.size(), MSG_DONTWAIT);
    if (n == 0) return ok_status();  // orderly close: the peer read up to our EOF
    if (n > 0) continue;             // the framing has no replies; ignore chatter
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    if (errno == ECONNRESET)
      return Error{ECONNRESET, "the peer closed the connection before reading everything"};
    return errno_error("waiting for the peer to read");
  }
}

}  // namespace

Result<Handover> read_handover(int conn, const Deadline& deadline, size_t max_bytes) {
  // The size is unknown until EOF. Reading into a growing vector would zero-fill and re-copy
  // it several times over (page faults dominate on VMs); instead read into uninitialised
  // pieces of growing size and copy once at the end.
  struct Piece {
    std::unique_ptr<std::byte[]> data;
    size_t capacity = 0;
    size_t used = 0;
  };
  std::vector<Piece> pieces;
  Handover out;
  // Read one byte past the bound so that "exactly max_bytes" and "more" can be told apart.
  const size_t cap = max_bytes == SIZE_MAX ? max_bytes : max_bytes + 1;
  size_t total = 0;
  size_t next_piece = kFirstChunk;
  while (true) {
    if (pieces.empty() || pieces.back().used == pieces.back().capacity) {
      if (total >= cap) {
        return Error{EFBIG, "the message exceeds the limit of " + std::to_string(max_bytes) + " bytes"};
      }
      const size_t size = std::min(next_piece, cap - total);
      pieces.push_back(Piece{std::make_unique_for_overwrite<std::byte[]>(size), size, 0});
      next_piece = std::min(next_piece * 2, kLargestChunk);
    }
    Piece& piece = pieces.back();
    auto chunk =
        recv_with_fd(conn, std::span(piece.data.get() + piece.used, piece.capacity - piece.used), deadline);
    if (!chunk.ok()) {
      return std::move(chunk).error().context("reading the message (" + std::to_string(total) +
                                              " bytes received so far)");
    }
    if (chunk->fd) {
      if (out.fd) {
        return Error{EPROTO, "the peer attached a second fd (at byte " + std::to_string(total) +
                                 "); the framing carries exactly one"};
      }
      out.fd = std::move(chunk->fd);
    }
    if (chunk->extra_fds_closed != 0) {
      return Error{EPROTO, "the peer attached " + std::to_string(chunk->extra_fds_closed + 1) +
                               " fds to one write; the framing carries exactly one"};
    }
    if (chunk->size == 0) break;
    piece.used += chunk->size;
    total += chunk->size;
  }
  if (total > max_bytes) {
    return Error{EFBIG, "the message exceeds the limit of " + std::to_string(max_bytes) + " bytes"};
  }
  out.state.reserve(total);
  for (const Piece& piece : pieces)
    out.state.insert(out.state.end(), piece.data.get(), piece.data.get() + piece.used);
  return out;
}

Status write_handover(int conn, int fd, std::span<const std::byte> state, const Deadline& deadline) {
  if (fd >= 0) {
    FERRY_TRY(send_with_fd(conn, fd, state, deadline));
  } else {
    FERRY_TRY(send_all(conn, state, deadline));
  }
  if (::shutdown(conn, SHUT_WR) != 0) return errno_error("shutting down the sending side");
  return wait_consumed(conn, state.size(), deadline);
}

Status send_state(const std::string& supervisor_socket, int fuse_fd, std::span<const std::byte> state,
                  std::chrono::milliseconds timeout) {
  const std::string what =
      "sending " + std::to_string(state.size()) + " bytes of state to the supervisor at " + supervisor_socket;
  if (state.empty()) return Error{EINVAL, what + ": the state is empty (an fd cannot travel without data)"};
  if (fuse_fd < 0) return Error{EBADF, what + ": no fd to send"};
  Deadline deadline = Deadline::after(timeout);
  auto conn = connect_unix(supervisor_socket, deadline);
  if (!conn.ok()) return std::move(conn).error().context(what);
  Status s = write_handover(conn->get(), fuse_fd, state, deadline);
  if (!s.ok()) return std::move(s).error().context(what);
  return ok_status();
}

Result<Handover> receive_state(const std::string& supervisor_socket, std::chrono::milliseconds timeout,
                               size_t max_bytes) {
  const std::string what = "receiving state from the supervisor at " + supervisor_socket;
  Deadline deadline = Deadline::after(timeout);
  auto conn = connect_unix(supervisor_socket, deadline);
  if (!conn.ok()) return std::move(conn).error().context(what);
  auto handover = read_handover(conn->get(), deadline, max_bytes);
  if (!handover.ok()) return std::move(handover).error().context(what);
  return handover;
}

}  // namespace ferry::ipc
