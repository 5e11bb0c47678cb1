// Supervisor: the holder side of the supervisor protocol (supervisor_wire.h), for one daemon.
//
// It listens on one socket path and keeps, in memory, the LATEST state the daemon saved
// together with the daemon's /dev/fuse fd. Holding that fd is what keeps the FUSE connection
// (and so the mount) alive while no daemon runs (the kernel aborts a FUSE connection when its
// last open file closes).
//
// The manager drives both directions explicitly, so nothing here guesses who connects:
//   - receive(trigger): a SAVE. Accepts one connection while calling `trigger` (which asks the
//     daemon, e.g. PUT /api/v1/daemon/fuse/sendfd, to connect and send), reads fd + bytes to
//     EOF and replaces the stored state. The trigger runs on the calling thread while a worker
//     thread accepts and reads, because the daemon's HTTP handler may not answer until its
//     state has been read.
//   - send(trigger): a TAKEOVER. Accepts one connection while calling `trigger` (e.g. PUT
//     /api/v1/daemon/fuse/takeover) and sends the stored bytes with the stored fd attached.
// The timeout bounds the accept and the transfer, counted from the start of the call. The
// trigger cannot be interrupted: give it its own timeout no longer than the call's (the call
// returns only once the trigger has returned).
// Connections that were already queued before a call (late answers to an earlier request that
// timed out, probes) are accepted and closed first: they are not the answer to this request.
//
// Errors (all keep the stored state untouched), each prefixed with what was attempted and
// the socket path:
//   the trigger's own code    "...: the trigger failed: <its message>" (the wait is cancelled at once)
//   ETIMEDOUT                 no connection, or the message incomplete, within the timeout
//   EPROTO                    the daemon sent bytes but no fd, or more than one fd
//   ENODATA                   the daemon connected and closed without sending anything
//   EFBIG                     more than Options::max_state_bytes
//   the validator's code      Options::validate refused the bytes
//   ECONNRESET, EPIPE         send(): the daemon closed before reading the whole state
//   ENOENT                    send() with nothing stored
//   ENOTCONN                  send() with a state that has no fd (e.g. loaded from disk)
//
// Thread-safety: all methods may be called from any thread. receive() and send() are
// serialized with each other (one socket, one exchange at a time). The state accessors never
// wait for an exchange in progress; they see the state before or after it, never half of it.
// The object must outlive any call into it; the destructor must not run during receive/send.
//
// Ownership: the stored fd belongs to the Supervisor. A replaced fd is closed only after its
// successor is stored, and not before an in-flight send() of it has finished.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "ipc/supervisor_wire.h"
#include "ipc/unix_socket.h"

namespace ferry::ipc {

class Supervisor {
 public:
  struct Options {
    size_t max_state_bytes = kMaxStateBytes;  // a bigger save is refused (EFBIG)
    // Optional check of a received state before it replaces the stored one, called on the
    // thread that called receive(). The framing cannot tell a daemon that died mid-save from
    // one that finished (both just close), so a manager of Ferry daemons passes a check of
    // the envelope here (open_envelope(): magic, length, CRC). Its error is returned, with its
    // code, and the previous state is kept.
    std::function<Status(std::span<const std::byte>)> validate;
  };

  // What one exchange did, for the caller's log and checks (e.g. that the peer is the daemon
  // it meant to talk to).
  struct Exchange {
    PeerCredentials peer;  // the process that connected (SO_PEERCRED)
    size_t bytes = 0;      // state bytes received or sent
  };

  // Listens on `path` (mode 0600; a stale socket file is replaced, a live one refused).
  static Result<std::unique_ptr<Supervisor>> listen(const std::string& path, Options options);
  static Result<std::unique_ptr<Supervisor>> listen(const std::string& path) {
    return listen(path, Options{});
  }

  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  // Closes the listening socket and removes the socket file if it is still ours. Closes the
  // stored fd: if no daemon holds the FUSE connection at that moment, the kernel aborts it.
  ~Supervisor();

  // Save: see above. `trigger` may be empty (the daemon is expected to connect by itself).
  Result<Exchange> receive(const std::function<Status()>& trigger, std::chrono::milliseconds timeout);

  // Takeover: see above. Fails at once (without calling trigger) when no state with an fd is
  // stored. The stored state stays stored: a failed takeover can be retried.
  Result<Exchange> send(const std::function<Status()>& trigger, std::chrono::milliseconds timeout);

  // Something is stored (bytes, with or without an fd).
  [[nodiscard]] bool has_state() const;
  // The stored state has an fd (a takeover is possible).
  [[nodiscard]] bool has_fd() const;
  [[nodiscard]] size_t state_size() const;
  // The stored fd, borrowed (-1 if none): valid until the state is replaced or cleared. For
  // inspection (fstat) only; use dup_fd() to keep a copy.
  [[nodiscard]] int fd() const;
  // A close-on-exec duplicate of the stored fd (ENOTCONN when there is none).
  [[nodiscard]] Result<UniqueFd> dup_fd() const;
  // A copy of the stored bytes, e.g. to persist them (the fd cannot be persisted).
  [[nodiscard]] std::optional<std::vector<std::byte>> state() const;

  // Replaces the stored state, e.g. with bytes loaded from disk after a manager restart (then
  // `fd` is invalid and send() refuses until a fresh save brings an fd).
  void store(UniqueFd fd, std::vector<std::byte> state);
  // Forgets the stored state and closes the stored fd.
  void clear();

  [[nodiscard]] const std::string& path() const { return listener_.path(); }

  struct Key {  // restricts construction to listen()
    explicit Key() = default;
  };
  Supervisor(Key, UnixListener listener, Options options);

 private:
  struct Stored {
    UniqueFd fd;
    std::vector<std::byte> bytes;
  };

  // Accepts and closes every connection already queued.
  void drop_queued_connections();
  // Runs `io` on a worker thread (accept + transfer) while calling `trigger` here.
  Result<Exchange> exchange(const std::function<Status()>& trigger, std::chrono::milliseconds timeout,
                            const std::string& what,
                            const std::function<Result<Exchange>(const Deadline&)>& io);
  [[nodiscard]] std::shared_ptr<const Stored> snapshot() const;
  void replace(std::shared_ptr<const Stored> next);

  UnixListener listener_;
  Options options_;
  std::mutex exchange_mu_;  // serializes receive()/send()
  mutable std::mutex state_mu_;
  // Immutable once stored; a send() in flight keeps its snapshot (and fd) alive.
  std::shared_ptr<const Stored> stored_;
};

}  // namespace ferry::ipc
