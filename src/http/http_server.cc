#include "http/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <list>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "common/dirs.h"
#include "common/unique_fd.h"
#include "http/json_errors.h"
#include "http/request_parser.h"
#include "ipc/unix_socket.h"

namespace ferry::http {
namespace {

// Bytes read from a connection at a time.
constexpr size_t kReadChunk = 16 << 10;

// One accepted connection: its socket and the thread serving it.
struct Connection {
  UniqueFd fd;
  std::thread thread;
  std::atomic<bool> finished{false};
};

}  // namespace

struct HttpServer::Impl {
  HttpHandler handler;
  HttpServerOptions opts;
  std::string endpoint;
  // The unix socket (it removes its file when closed, unless a successor replaced it), or
  // the TCP socket in listen_fd.
  std::optional<ipc::UnixListener> unix_listener;
  UniqueFd listen_fd;
  UniqueFd stop_fd;  // eventfd, readable from the moment the server stops; wakes every poll
  std::thread acceptor;
  std::mutex mu;                                       // guards connections
  std::list<std::unique_ptr<Connection>> connections;  // accepted and not yet joined
  std::atomic<int> active{0};                          // requests begun and not yet answered completely
  std::mutex idle_mu;                                  // with idle_cv: drain() waits for active == 0
  std::condition_variable idle_cv;

  ~Impl() { stop(); }
  void stop();
  void accept_loop();
  void serve(Connection& c);
  // Joins the threads of connections that have ended; the number left.
  size_t reap_finished();
};

namespace {

// The nydus-style code of a status the parser refuses a request with.
const char* refusal_code(int status) {
  switch (status) {
    case 413:
      return "PayloadTooLarge";
    case 414:
    case 431:
      return "RequestTooLarge";
    default:
      return "BadRequest";
  }
}

// Runs the handler; whatever it throws or returns, the answer is a well-formed response.
HttpResponse call_handler(const HttpHandler& handler, const HttpRequest& request) {
  HttpResponse response;
  try {
    response = handler(request);
  } catch (const std::exception& e) {
    spdlog::error("http: handler for {} {} threw: {}", request.method, request.path, e.what());
    return json_error(500, "InternalError", std::string("internal error: ") + e.what());
  } catch (...) {
    spdlog::error("http: handler for {} {} threw a non-exception", request.method, request.path);
    return json_error(500, "InternalError", "internal error");
  }
  if (response.status < 200 || response.status > 599) {
    spdlog::error("http: handler for {} {} returned status {}", request.method, request.path,
                  response.status);
    return json_error(500, "InternalError",
                      "handler returned an invalid HTTP status " + std::to_string(response.status));
  }
  return response;
}

// The bytes of one response. 204 and 304 carry no body and no Content-Length.
std::string serialize(const HttpResponse& r, bool keep_alive, bool head) {
  std::string out =
      "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason_phrase(r.status)) + "\r\n";
  const bool bodiless = r.status == 204 || r.status == 304;
  if (!bodiless) {
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    if (!r.body.empty() && !r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
  }
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  if (!bodiless && !head) out += r.body;
  return out;
}

// Writes all of `bytes`; false when the peer is gone or stopped reading for the send timeout.
bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

enum class Wait { kReadable, kTimeout, kStopped };

// Waits until `fd` has bytes (or EOF), the server stops, or `timeout_ms` pass (-1: forever).
Wait wait_readable(int fd, int stop_fd, int timeout_ms) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  while (true) {
    const int n = ::poll(fds, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Wait::kStopped;  // cannot wait: give the connection up
    if (n == 0) return Wait::kTimeout;
    if (fds[1].revents != 0) return Wait::kStopped;
    return Wait::kReadable;
  }
}

// After an error answer: reads what the client still sends (so that it sees the answer rather
// than a reset), up to `limit` bytes or until it closes, goes silent or the server stops.
void discard_input(int fd, int stop_fd, int timeout_ms, size_t limit) {
  ::shutdown(fd, SHUT_WR);
  std::array<char, kReadChunk> buf{};
  size_t total = 0;
  while (total < limit && wait_readable(fd, stop_fd, timeout_ms) == Wait::kReadable) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    total += static_cast<size_t>(n);
  }
}

}  // namespace

void HttpServer::Impl::serve(Connection& c) {
  const int fd = c.fd.get();
  const int timeout_ms = opts.connection_timeout_s > 0 ? opts.connection_timeout_s * 1000 : -1;
  if (timeout_ms > 0) {
    // A client that stops reading cannot hold a send (and so this thread) for longer.
    timeval tv{opts.connection_timeout_s, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  RequestParser parser(opts.max_body);
  std::array<char, kReadChunk> buf{};
  bool at_eof = false;
  while (true) {
    const RequestParser::Step step = parser.next();
    if (step == RequestParser::Step::kRequest) {
      const HttpRequest request = parser.take_request();
      active.fetch_add(1);
      HttpResponse response = call_handler(handler, request);
      spdlog::debug("http: {} {} -> {}", request.method, request.path, response.status);
      const bool keep_alive = parser.keep_alive();
      const bool sent = send_all(fd, serialize(response, keep_alive, parser.head()));
      if (active.fetch_sub(1) == 1) {
        // A process leaving after this answer waits in drain(): wake it now, not on its next poll.
        std::lock_guard lock(idle_mu);
        idle_cv.notify_all();
      }
      if (!sent || !keep_alive) return;
      continue;
    }
    if (step == RequestParser::Step::kError) {
      const int status = parser.error_status();
      spdlog::debug("http: refused a request ({}): {}", status, parser.error_message());
      const HttpResponse response = json_error(status, refusal_code(status), parser.error_message());
      if (send_all(fd, serialize(response, false, false))) {
        discard_input(fd, stop_fd.get(), timeout_ms, 2 * opts.max_body + RequestParser::kHeaderLimit);
      }
      return;
    }
    if (step == RequestParser::Step::kContinue) {
      if (!send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return;
      continue;
    }
    // kNeedMore. After the client's end of input that means nothing was left half-sent (a
    // request cut short is a kError, answered 400 above): done.
    if (at_eof) return;
    if (wait_readable(fd, stop_fd.get(), timeout_ms) != Wait::kReadable) return;
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;
    if (n == 0) {
      at_eof = true;
      parser.end_of_input();
    } else {
      parser.append(std::string_view(buf.data(), static_cast<size_t>(n)));
    }
  }
}

size_t HttpServer::Impl::reap_finished() {
  std::list<std::unique_ptr<Connection>> ended;
  {
    std::lock_guard lock(mu);
    for (auto it = connections.begin(); it != connections.end();) {
      auto next = std::next(it);
      if ((*it)->finished.load()) ended.splice(ended.end(), connections, it);
      it = next;
    }
  }
  for (auto& c : ended) c->thread.join();
  std::lock_guard lock(mu);
  return connections.size();
}

void HttpServer::Impl::accept_loop() {
  while (true) {
    const int lfd = unix_listener ? unix_listener->fd() : listen_fd.get();
    pollfd fds[2] = {{lfd, POLLIN, 0}, {stop_fd.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("http: poll on '{}' failed: {}; no longer accepting", endpoint, std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    UniqueFd fd(::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) {
      // The client may have gone already (ECONNABORTED): next. Anything else (out of fds or
      // memory, say) is retried after a pause, so that a persistent failure cannot spin.
      if (errno != ECONNABORTED && errno != EINTR && errno != EAGAIN) {
        spdlog::warn("http: accept on '{}': {}", endpoint, std::strerror(errno));
        (void)wait_readable(stop_fd.get(), stop_fd.get(), 100);
      }
      continue;
    }
    if (reap_finished() >= opts.max_connections) continue;  // closed at once, not queued
    auto conn = std::make_unique<Connection>();
    conn->fd = std::move(fd);
    Connection* c = conn.get();
    try {
      std::lock_guard lock(mu);
      connections.push_back(std::move(conn));
      c->thread = std::thread([this, c] {
        try {
          serve(*c);
        } catch (const std::exception& e) {  // allocation failures only: the handler's are answered
          spdlog::error("http: connection on '{}' dropped: {}", endpoint, e.what());
        }
        c->fd.reset();
        c->finished = true;
      });
    } catch (const std::system_error& e) {  // no thread for it: the connection is refused
      spdlog::warn("http: cannot serve a connection on '{}': {}", endpoint, e.what());
      std::lock_guard lock(mu);
      connections.remove_if([c](const auto& p) { return p.get() == c; });
    }
  }
}

void HttpServer::Impl::stop() {
  if (stop_fd) {
    const uint64_t one = 1;
    (void)!::write(stop_fd.get(), &one, sizeof one);
  }
  if (acceptor.joinable()) acceptor.join();
  // Connections waiting for bytes see the stop at once; those inside the handler answer first.
  std::list<std::unique_ptr<Connection>> all;
  {
    std::lock_guard lock(mu);
    all.swap(connections);
  }
  for (auto& c : all) {
    if (c->thread.joinable()) c->thread.join();
  }
  listen_fd.reset();
  unix_listener.reset();
}

namespace {

// ---- sockets ----

bool is_loopback(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);  // sa_family says it is one
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);  // sa_family says it is one
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) != 0;
  }
  return false;
}

// `listener` or `listen_fd`: the one that is set is served.
Result<std::unique_ptr<HttpServer::Impl>> start(std::optional<ipc::UnixListener> listener, UniqueFd listen_fd,
                                                HttpHandler handler, HttpServerOptions opts, std::string endpoint) {
  auto impl = std::make_unique<HttpServer::Impl>();
  impl->handler = std::move(handler);
  impl->opts = opts;
  impl->endpoint = std::move(endpoint);
  impl->unix_listener = std::move(listener);
  impl->listen_fd = std::move(listen_fd);
  impl->stop_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!impl->stop_fd) return errno_error("eventfd for the HTTP server on '" + impl->endpoint + "'");
  // One thread per connection: a handler may block for seconds (takeover, mount) while the
  // manager keeps polling the state; a pool would queue those polls behind it.
  try {
    impl->acceptor = std::thread([raw = impl.get()] { raw->accept_loop(); });
  } catch (const std::system_error& e) {
    return Error{EAGAIN, "cannot start the HTTP server on '" + impl->endpoint + "': " + e.what()};
  }
  return impl;
}

Status check_options(const HttpServerOptions& opts) {
  if (opts.max_connections == 0) return Error{EINVAL, "max_connections must be at least 1"};
  if (opts.connection_timeout_s < 0) return Error{EINVAL, "connection_timeout_s must not be negative"};
  return ok_status();
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  // Stop first: joins every connection thread, so no handler runs past this point.
  impl_->stop();
}

bool HttpServer::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->idle_mu);
  return impl_->idle_cv.wait_for(lock, timeout, [this] { return impl_->active.load() == 0; });
}

const std::string& HttpServer::endpoint() const {
  return impl_->endpoint;
}

Result<std::unique_ptr<HttpServer>> HttpServer::listen_unix(const std::string& path, HttpHandler handler,
                                                            HttpServerOptions opts) {
  FERRY_TRY(check_options(opts));
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    if (auto made = make_dirs(path.substr(0, slash), 0755); !made.ok()) {
      return std::move(made).error().context("creating the directory of '" + path + "'");
    }
  }
  // The stale-socket rule and the refusal of anything that is not a socket are UnixListener's.
  FERRY_ASSIGN(ipc::UnixListener listener, ipc::UnixListener::listen(path, SOMAXCONN, opts.socket_mode));
  FERRY_ASSIGN(auto impl, start(std::move(listener), UniqueFd(), std::move(handler), opts, path));
  spdlog::info("http: listening on unix socket '{}'", path);
  return std::make_unique<HttpServer>(std::move(impl));
}

Result<std::unique_ptr<HttpServer>> HttpServer::listen_tcp(const std::string& host_port, HttpHandler handler,
                                                           HttpServerOptions opts) {
  FERRY_TRY(check_options(opts));
  // "host:port" or "[v6]:port".
  std::string host;
  std::string port;
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon + 1 == host_port.size()) {
    return Error{EINVAL, "'" + host_port + "' is not HOST:PORT"};
  }
  host = host_port.substr(0, colon);
  port = host_port.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port_num = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), port_num);
  if (ec != std::errc{} || p != port.data() + port.size() || port_num > 65535 || host.empty()) {
    return Error{EINVAL, "'" + host_port + "' is not HOST:PORT"};
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Error{EINVAL, "cannot resolve '" + host + "': " + ::gai_strerror(rc)};
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> results(found, &::freeaddrinfo);
  const addrinfo* ai = results.get();
  if (!opts.allow_non_loopback) {
    while (ai != nullptr && !is_loopback(ai->ai_addr)) ai = ai->ai_next;
    if (ai == nullptr) {
      return Error{EACCES, "refusing to listen on '" + host_port +
                               "': not a loopback address (allow_non_loopback is off)"};
    }
  }

  UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // restart without TIME_WAIT delay
  if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) return errno_error("bind '" + host_port + "'");
  if (::listen(fd.get(), SOMAXCONN) != 0) return errno_error("listen '" + host_port + "'");
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0)
    return errno_error("getsockname");
  const uint16_t bound_port = bound.ss_family == AF_INET6
                                  ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port)
                                  : ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  std::string endpoint =
      (ai->ai_family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(bound_port);

  FERRY_ASSIGN(auto impl, start(std::nullopt, std::move(fd), std::move(handler), opts, endpoint));
  spdlog::info("http: listening on tcp {}", impl->endpoint);
  return std::make_unique<HttpServer>(std::move(impl));
}

}  // namespace ferry::http
