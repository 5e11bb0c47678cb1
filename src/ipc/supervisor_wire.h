// The supervisor framing, compatible with Nydus (nydusd <-> nydus-snapshotter): how a daemon
// hands its state and its /dev/fuse fd to a supervisor, and gets them back on takeover.
//
//   - One unix stream socket per daemon. The SUPERVISOR listens; the daemon connects, both to
//     save (sendfd) and to restore (takeover).
//   - A message is: the fd as SCM_RIGHTS on the first sendmsg together with the first bytes,
//     the remaining bytes as plain writes, then the sender closes its side. End of stream is
//     end of message: there is no length prefix. Any size is carried (Nydus truncated at one
//     32 KiB read; we read until EOF), up to a receiver-chosen bound (kMaxStateBytes).
//   - The state bytes are opaque here (Ferry wraps them in state_envelope.h).
//
// Beyond Nydus, write_handover() (and so send_state()) does not report success until the
// receiver has consumed every byte: after the last write it shuts down its sending side and
// waits for the peer to close or for its unread-bytes counter (SIOCOUTQ) to reach zero. A
// receiver that closes with bytes unread is an error (ECONNRESET), not a silent loss.
//
// Thread-safety: stateless functions; use one connection from one thread.
// Ownership: fds passed in are borrowed (the kernel sends a new reference to the same open file;
// the caller keeps its own). Received fds are returned owned, close-on-exec.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "ipc/fd_passing.h"

namespace ferry::ipc {

// Default bound on one state message. Ferry's state is small (init parameters + a list of
// attached images); this only protects a receiver from a runaway or hostile peer.
inline constexpr size_t kMaxStateBytes = size_t{256} << 20;

struct Handover {
  UniqueFd fd;                   // invalid when the peer sent no fd
  std::vector<std::byte> state;  // all bytes up to EOF
};

// ---- Daemon side (client) ----

// Save: connects to the supervisor at `supervisor_socket` and sends `state` with `fuse_fd`
// attached to the first bytes, then waits (within `timeout`) until the supervisor has consumed
// everything. `state` must not be empty (EINVAL: an fd cannot travel without data). Errors name
// the socket and the step: connect (ENOENT/ECONNREFUSED: supervisor not listening), send,
// ETIMEDOUT, ECONNRESET (supervisor closed before reading it all).
Status send_state(const std::string& supervisor_socket, int fuse_fd, std::span<const std::byte> state,
                  std::chrono::milliseconds timeout);

// Takeover: connects to the supervisor and reads until EOF. The fd arrives with the first
// bytes; a missing fd is returned as an invalid Handover::fd (an error for a takeover: the
// caller says so, in its own words). An empty Handover means the supervisor had nothing.
// Errors: connect, ETIMEDOUT, EFBIG (more than max_bytes), EPROTO (more than one fd).
Result<Handover> receive_state(const std::string& supervisor_socket, std::chrono::milliseconds timeout,
                               size_t max_bytes = kMaxStateBytes);

// ---- One connection, either side ----

// Reads one message from a connected socket until EOF: bytes plus at most one fd (wherever in
// the stream it arrives; a second one is EPROTO and everything received is closed).
Result<Handover> read_handover(int conn, const Deadline& deadline, size_t max_bytes = kMaxStateBytes);

// Writes one message: `state` (non-empty when fd >= 0) with `fd` attached to the first bytes
// (fd < 0: bytes only), shuts down the sending side (the peer sees EOF) and waits until the
// peer has consumed every byte, as described above. The caller closes `conn` afterwards.
Status write_handover(int conn, int fd, std::span<const std::byte> state, const Deadline& deadline);

}  // namespace ferry::ipc
