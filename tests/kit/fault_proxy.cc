#include "kit/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace ferry::testkit {
namespace {

constexpr size_t kMaxHead = 64 * 1024;

// Waits until `fd` is ready for `events` or the proxy stops (`stop_fd` readable): false then.
bool ready(int fd, short events, int stop_fd, int timeout_ms = -1) {
  while (true) {
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(fds, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (fds[1].revents != 0) return false;
    return true;
  }
}

// Reads what is there (at most out.size()): >0 bytes, 0 at EOF, -1 on error or stop.
ssize_t read_some(int fd, char* out, size_t n, int stop_fd) {
  if (!ready(fd, POLLIN, stop_fd)) return -1;
  ssize_t r;
  do r = ::read(fd, out, n);
  while (r < 0 && errno == EINTR);
  return r;
}

bool write_all(int fd, const char* data, size_t n, int stop_fd) {
  while (n > 0) {
    if (!ready(fd, POLLOUT, stop_fd)) return false;
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The value of header `name` (lower case) in `head`, or "".
std::string header_value(const std::string& head, const std::string& name) {
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string::npos) {
    pos += 2;
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) break;
    std::string line = head.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos && lower(line.substr(0, colon)) == name) {
      size_t v = line.find_first_not_of(' ', colon + 1);
      return v == std::string::npos ? "" : line.substr(v);
    }
  }
  return "";
}

// `head` (ending with the blank line) without Connection/Keep-Alive headers, with
// `Connection: close`.
std::string close_after(const std::string& head) {
  std::string out;
  size_t pos = 0;
  bool first = true;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos || end == pos) break;
    std::string line = head.substr(pos, end - pos);
    pos = end + 2;
    std::string name = lower(line.substr(0, line.find(':')));
    if (!first && (name == "connection" || name == "keep-alive")) continue;
    out += line + "\r\n";
    first = false;
  }
  return out + "Connection: close\r\n\r\n";
}

int connect_upstream(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Closes an fd on every path out of a connection's thread.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

namespace {
Fault make_fault(Fault::Kind kind, std::string path) {
  Fault f;
  f.kind = kind;
  f.path_contains = std::move(path);
  return f;
}
}  // namespace

Fault Fault::delay_by(std::chrono::milliseconds d, std::string path) {
  Fault f = make_fault(Kind::kDelay, std::move(path));
  f.delay = d;
  return f;
}
Fault Fault::cut_after(uint64_t n, std::string path) {
  Fault f = make_fault(Kind::kCutAfter, std::move(path));
  f.bytes = n;
  return f;
}
Fault Fault::stall(std::string path) { return make_fault(Kind::kStall, std::move(path)); }
Fault Fault::corrupt_body_at(uint64_t offset, std::string path) {
  Fault f = make_fault(Kind::kCorruptBody, std::move(path));
  f.bytes = offset;
  return f;
}
Fault Fault::answer(int status, std::string path) {
  Fault f = make_fault(Kind::kStatus, std::move(path));
  f.status = status;
  return f;
}
Fault Fault::refuse(std::string path) { return make_fault(Kind::kRefuse, std::move(path)); }

FaultProxy::FaultProxy(int upstream_port) : upstream_port_(upstream_port) {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (stop_fd_ < 0 || fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(fd, 128) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return;
  }
  listen_fd_ = fd;
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
  }
  {
    std::lock_guard lock(mu_);
    stalls_released_ = true;
  }
  stall_cv_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  std::list<Conn> all;
  {
    std::lock_guard lock(mu_);
    all.swap(conns_);
  }
  for (auto& c : all) {
    if (c.thread.joinable()) c.thread.join();
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void FaultProxy::set_fault(Fault f) {
  std::lock_guard lock(mu_);
  standing_ = std::move(f);
  stalls_released_ = false;
}

void FaultProxy::push_fault(Fault f) {
  std::lock_guard lock(mu_);
  queued_.push_back(std::move(f));
  stalls_released_ = false;
}

void FaultProxy::release_stalls() {
  {
    std::lock_guard lock(mu_);
    stalls_released_ = true;
  }
  stall_cv_.notify_all();
}

std::vector<std::string> FaultProxy::request_log() {
  std::lock_guard lock(mu_);
  return log_;
}

Fault FaultProxy::fault_for(const std::string& target) {
  std::lock_guard lock(mu_);
  auto matches = [&](const Fault& f) {
    return f.path_contains.empty() || target.find(f.path_contains) != std::string::npos;
  };
  for (auto it = queued_.begin(); it != queued_.end(); ++it) {
    if (matches(*it)) {
      Fault f = std::move(*it);
      queued_.erase(it);
      return f;
    }
  }
  return matches(standing_) ? standing_ : Fault::none();
}

bool FaultProxy::wait_stall_released() {
  std::unique_lock lock(mu_);
  stall_cv_.wait(lock, [&] { return stalls_released_ || stopping_.load(); });
  return !stopping_.load();
}

void FaultProxy::reap_done() {
  std::lock_guard lock(mu_);
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->done.load()) {
      it->thread.join();
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void FaultProxy::accept_loop() {
  while (ready(listen_fd_, POLLIN, stop_fd_)) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    reap_done();
    std::lock_guard lock(mu_);
    Conn& c = conns_.emplace_back();
    c.fd = fd;
    c.thread = std::thread([this, &c] {
      serve(c.fd);
      c.done = true;
    });
  }
}

void FaultProxy::serve(int client_fd) {
  FdCloser client{client_fd};
  // The request: its head, then a body of Content-Length bytes.
  std::string req;
  char buf[16 * 1024];
  size_t head_end;
  while ((head_end = req.find("\r\n\r\n")) == std::string::npos) {
    if (req.size() > kMaxHead) return;
    ssize_t n = read_some(client_fd, buf, sizeof buf, stop_fd_);
    if (n <= 0) return;  // a client that connected and left (a readiness probe)
    req.append(buf, static_cast<size_t>(n));
  }
  std::string head = req.substr(0, head_end + 4);
  std::string body = req.substr(head_end + 4);
  const std::string length = header_value(head, "content-length");
  const size_t want = length.empty() ? 0 : std::stoull(length);
  while (body.size() < want) {
    ssize_t n = read_some(client_fd, buf, sizeof buf, stop_fd_);
    if (n <= 0) return;
    body.append(buf, static_cast<size_t>(n));
  }
  const std::string request_line = head.substr(0, head.find("\r\n"));
  const size_t sp1 = request_line.find(' ');
  const std::string target =
      sp1 == std::string::npos ? "" : request_line.substr(sp1 + 1, request_line.rfind(' ') - sp1 - 1);
  ++requests_;
  ++in_flight_;
  struct Done {
    std::atomic<uint64_t>& n;
    ~Done() { --n; }
  } done{in_flight_};
  {
    std::string entry = request_line;
    const std::string range = header_value(head, "range");
    if (!range.empty()) entry += " Range: " + range;
    std::lock_guard lock(mu_);
    log_.push_back(std::move(entry));
  }

  const Fault fault = fault_for(target);
  if (fault.kind != Fault::Kind::kNone) ++faults_applied_;
  switch (fault.kind) {
    case Fault::Kind::kRefuse:
      return;
    case Fault::Kind::kStatus: {
      const std::string answer = "HTTP/1.1 " + std::to_string(fault.status) +
                                 " Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)write_all(client_fd, answer.data(), answer.size(), stop_fd_);
      return;
    }
    case Fault::Kind::kDelay: {
      pollfd p{stop_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(fault.delay.count())) != 0) return;  // stopping
      break;
    }
    default:
      break;
  }

  FdCloser upstream{connect_upstream(upstream_port_)};
  if (upstream.fd < 0) return;  // the server is down: the client sees a closed connection
  const std::string forwarded = close_after(head) + body;
  if (!write_all(upstream.fd, forwarded.data(), forwarded.size(), stop_fd_)) return;
  if (fault.kind == Fault::Kind::kStall && !wait_stall_released()) return;

  // The answer, relayed until the server closes.
  std::string answer_head;  // until its end is seen (for kCorruptBody)
  bool in_body = false;
  uint64_t body_seen = 0;
  uint64_t relayed = 0;
  while (true) {
    ssize_t n = read_some(upstream.fd, buf, sizeof buf, stop_fd_);
    if (n <= 0) return;
    size_t len = static_cast<size_t>(n);
    size_t body_from = 0;  // where in buf the body starts
    if (!in_body) {
      answer_head.append(buf, len);
      size_t e = answer_head.find("\r\n\r\n");
      if (e != std::string::npos) {
        in_body = true;
        body_from = len - (answer_head.size() - (e + 4));
      } else {
        body_from = len;
      }
    }
    if (fault.kind == Fault::Kind::kCorruptBody && in_body) {
      const uint64_t here = body_seen;
      const uint64_t chunk_body = len - body_from;
      if (fault.bytes >= here && fault.bytes < here + chunk_body) {
        buf[body_from + (fault.bytes - here)] ^= static_cast<char>(0xff);
      }
      body_seen += chunk_body;
    }
    if (fault.kind == Fault::Kind::kCutAfter && relayed + len > fault.bytes) {
      len = static_cast<size_t>(fault.bytes - relayed);
      (void)write_all(client_fd, buf, len, stop_fd_);
      bytes_to_client_ += len;
      return;
    }
    if (!write_all(client_fd, buf, len, stop_fd_)) return;
    relayed += len;
    bytes_to_client_ += len;
  }
}

}  // namespace ferry::testkit
