// Filesystem AF_UNIX stream sockets for the supervisor protocol: connecting with a deadline,
// a listener that owns its socket file, and the peer's credentials.
//
// Contract:
//   - Every socket we create is close-on-exec and non-blocking; all waiting goes through
//     Deadline (fd_passing.h), so nothing blocks past it.
//   - Errors name the socket path and say what a person can do about it (ENOENT: nothing is
//     listening there; EADDRINUSE: another live listener owns the path; ...).
//   - UnixListener owns its socket file: created with mode 0600 or the one asked for (bind, chmod, then listen, so
//     no one can connect before the mode is tight), removed on destruction if the path still
//     names OUR socket (not one a successor bound in the meantime).
//   - UnixListener is thread-compatible: accept() from one thread at a time.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "ipc/fd_passing.h"

namespace ferry::ipc {

// Connects to the unix socket at `path`. A full listen backlog is retried until the deadline;
// "no socket" (ENOENT) and "nobody listening" (ECONNREFUSED) fail at once.
Result<UniqueFd> connect_unix(const std::string& path, const Deadline& deadline);

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The credentials of the process that connected (SO_PEERCRED: as of connect(2)).
Result<PeerCredentials> peer_credentials(int sock);

class UnixListener {
 public:
  // Listens on `path` with `mode` (0600 unless told otherwise). A stale socket file (nobody
  // accepts on it) is replaced; a live one is refused (EADDRINUSE) and so is anything that is
  // not a socket (EEXIST, naming what it is: a regular file is not a stale socket, it is left
  // alone). The parent directory must exist.
  static Result<UnixListener> listen(const std::string& path, int backlog = 16, mode_t mode = 0600);

  UnixListener(UnixListener&& other) noexcept;
  UnixListener& operator=(UnixListener&& other) noexcept;
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;
  ~UnixListener();

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const std::string& path() const { return path_; }

  // Waits for one connection (ETIMEDOUT/ECANCELED per the deadline) and accepts it.
  Result<UniqueFd> accept(const Deadline& deadline);
  // Accepts a connection that is already pending; an invalid fd when there is none.
  Result<UniqueFd> try_accept();

 private:
  UnixListener(std::string path, UniqueFd fd, dev_t dev, ino_t ino);
  void unlink_if_ours();

  std::string path_;
  UniqueFd fd_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace ferry::ipc
