#include "ipc/unix_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>
#include <thread>

namespace ferry::ipc {
namespace {

Result<sockaddr_un> make_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty()) return Error{EINVAL, "empty unix socket path"};
  if (path.size() >= sizeof(addr.sun_path)) {
    return Error{ENAMETOOLONG, "unix socket path " + path + " is " + std::to_string(path.size()) +
                                   " bytes; the kernel allows at most " +
                                   std::to_string(sizeof(addr.sun_path) - 1)};
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

const sockaddr* as_sockaddr(const sockaddr_un& addr) {
  // The sockets API takes the generic type; sockaddr_un is layout-compatible by design.
  return reinterpret_cast<const sockaddr*>(&addr);
}

const char* file_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a fifo";
  return "something else";
}

Result<UniqueFd> new_socket() {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno_error("creating a unix socket");
  return fd;
}

// Connects once. Returns an invalid fd for "backlog full, try again".
Result<UniqueFd> try_connect(const sockaddr_un& addr, const std::string& path) {
  FERRY_ASSIGN(UniqueFd fd, new_socket());
  while (::connect(fd.get(), as_sockaddr(addr), sizeof(addr)) != 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return UniqueFd();
    int err = errno;
    if (err == ENOENT)
      return Error{err, "connecting to " + path + ": no socket there (is the listener running?)"};
    if (err == ECONNREFUSED) {
      return Error{err,
                   "connecting to " + path + ": connection refused (stale socket: nobody listens on it)"};
    }
    return errno_error(err, "connecting to " + path);
  }
  return fd;
}

}  // namespace

Result<UniqueFd> connect_unix(const std::string& path, const Deadline& deadline) {
  FERRY_ASSIGN(sockaddr_un addr, make_address(path));
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    FERRY_ASSIGN(UniqueFd fd, try_connect(addr, path));
    if (fd) return fd;
    // The listener's backlog is full: it is alive but busy. Nothing to poll on for that, so
    // back off a little (still honouring cancellation) and retry.
    if (deadline.expired()) {
      return Error{ETIMEDOUT, "connecting to " + path + ": listen backlog stayed full for " +
                                  std::to_string(deadline.budget.count()) + " ms"};
    }
    Deadline nap{std::min(deadline.at, Clock::now() + pause), deadline.cancel_fd, pause};
    if (deadline.cancel_fd >= 0) {
      Status s = wait_fd(deadline.cancel_fd, POLLIN, nap, "connecting to " + path);
      if (s.ok()) return Error{ECANCELED, "connecting to " + path + ": cancelled"};
      if (s.error().code != ETIMEDOUT) return s.error();
    } else {
      std::this_thread::sleep_for(pause);
    }
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

Result<PeerCredentials> peer_credentials(int sock) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return errno_error("SO_PEERCRED");
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

Result<UnixListener> UnixListener::listen(const std::string& path, int backlog, mode_t mode) {
  FERRY_ASSIGN(sockaddr_un addr, make_address(path));

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error{EEXIST, "cannot listen on " + path + ": it exists and is " + file_kind(st.st_mode) +
                               ", not a socket; refusing to replace it"};
    }
    // A socket file: live if someone accepts on it (or its backlog is full), stale otherwise.
    auto probe = try_connect(addr, path);
    if (probe.ok()) {
      return Error{EADDRINUSE, "cannot listen on " + path + ": another process is listening on it"};
    }
    if (probe.error().code != ECONNREFUSED && probe.error().code != ENOENT) return std::move(probe).error();
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return errno_error("removing the stale socket " + path);
    }
  } else if (errno != ENOENT) {
    return errno_error("inspecting " + path);
  }

  FERRY_ASSIGN(UniqueFd fd, new_socket());
  if (::bind(fd.get(), as_sockaddr(addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == EADDRINUSE) {
      return Error{err, "binding " + path + ": the path was taken meanwhile (another listener starting?)"};
    }
    return errno_error(err, "binding " + path);
  }
  // From here on the file is ours: remove it on every failure.
  struct Unlinker {
    const std::string& p;
    bool armed = true;
    ~Unlinker() {
      if (armed) ::unlink(p.c_str());
    }
  } unlinker{path};
  // The mode must be tight before listen(): until then every connect is refused, so no one can
  // slip in through the umask-derived mode bind(2) gave the file.
  if (::chmod(path.c_str(), mode) != 0) return errno_error("chmod " + path);
  if (::lstat(path.c_str(), &st) != 0) return errno_error("inspecting " + path + " after bind");
  if (::listen(fd.get(), backlog) != 0) return errno_error("listening on " + path);
  unlinker.armed = false;
  return UnixListener(path, std::move(fd), st.st_dev, st.st_ino);
}

UnixListener::UnixListener(std::string path, UniqueFd fd, dev_t dev, ino_t ino)
    : path_(std::move(path)), fd_(std::move(fd)), dev_(dev), ino_(ino) {}

UnixListener::UnixListener(UnixListener&& other) noexcept
    : path_(std::exchange(other.path_, {})),
      fd_(std::move(other.fd_)),
      dev_(std::exchange(other.dev_, 0)),
      ino_(std::exchange(other.ino_, 0)) {}

UnixListener& UnixListener::operator=(UnixListener&& other) noexcept {
  if (this != &other) {
    unlink_if_ours();
    path_ = std::exchange(other.path_, {});
    fd_ = std::move(other.fd_);
    dev_ = std::exchange(other.dev_, 0);
    ino_ = std::exchange(other.ino_, 0);
  }
  return *this;
}

UnixListener::~UnixListener() {
  unlink_if_ours();
}

void UnixListener::unlink_if_ours() {
  if (path_.empty() || !fd_) return;
  // Close first so that a racing prober sees a refused (stale) socket, not a live one.
  fd_.reset();
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path_.c_str());
  path_.clear();
}

Result<UniqueFd> UnixListener::try_accept() {
  while (true) {
    UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (conn) return conn;
    if (errno == EINTR) continue;
    // ECONNABORTED: a client gave up while queued; look at the next one.
    if (errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return UniqueFd();
    return errno_error("accepting on " + path_);
  }
}

Result<UniqueFd> UnixListener::accept(const Deadline& deadline) {
  while (true) {
    FERRY_ASSIGN(UniqueFd conn, try_accept());
    if (conn) return conn;
    FERRY_TRY(wait_fd(fd_.get(), POLLIN, deadline, "waiting for a connection on " + path_));
  }
}

}  // namespace ferry::ipc
