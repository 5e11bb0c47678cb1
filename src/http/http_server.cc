#include "http/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <thread>
#include <utility>

#include "common/unique_fd.h"
#include "http/json_errors.h"

namespace ferry::http {
namespace {

// Per-connection memory of libmicrohttpd: request line + headers must fit in it (about half
// is left for I/O buffers), so it is the header size limit. Larger requests get 431 from MHD.
constexpr size_t kConnectionMemory = 64 << 10;

struct DaemonDeleter {
  void operator()(MHD_Daemon* d) const { MHD_stop_daemon(d); }
};
struct ResponseDeleter {
  void operator()(MHD_Response* r) const { MHD_destroy_response(r); }
};
using DaemonPtr = std::unique_ptr<MHD_Daemon, DaemonDeleter>;
using ResponsePtr = std::unique_ptr<MHD_Response, ResponseDeleter>;

// What one request accumulates between the calls MHD makes for it. Owned by MHD's con_cls
// slot from the first call of the access handler to the completion callback.
struct RequestState {
  HttpRequest request;
  bool too_large = false;  // body exceeded max_body: the handler will not run
  size_t discarded = 0;    // body bytes dropped after that
};

}  // namespace

struct HttpServer::Impl {
  HttpHandler handler;
  HttpServerOptions opts;
  std::string endpoint;
  std::string unix_path;  // the socket file we created; empty for TCP
  dev_t dev = 0;          // identity of that file, so we never unlink a successor's socket
  ino_t ino = 0;
  DaemonPtr daemon;
  std::atomic<int> active{0};  // requests begun and not yet answered completely
};

namespace {

// ---- libmicrohttpd callbacks. None may let an exception unwind into C. ----

[[gnu::format(printf, 2, 0)]] void log_from_mhd(void* /*cls*/, const char* fmt, va_list ap) {
  char line[512];
  std::vsnprintf(line, sizeof line, fmt, ap);
  size_t n = std::strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
  try {
    // Debug: MHD reports every malformed client request here; a misbehaving client must
    // not be able to flood the log.
    spdlog::debug("http: libmicrohttpd: {}", line);
  } catch (...) {  // NOLINT(bugprone-empty-catch): logging is best effort
  }
}

MHD_Result collect_query(void* cls, MHD_ValueKind /*kind*/, const char* key, const char* value) {
  auto* query = static_cast<std::map<std::string, std::string>*>(cls);
  try {
    query->emplace(key, value != nullptr ? value : "");  // "?flag" has no value
  } catch (...) {
    return MHD_NO;
  }
  return MHD_YES;
}

MHD_Result send_response(MHD_Connection* connection, const HttpResponse& response) {
  // MUST_COPY: MHD keeps its own copy, so our string can go away with the request.
  // The cast only drops const: MHD does not write to the buffer it copies from.
  ResponsePtr r(MHD_create_response_from_buffer(response.body.size(), const_cast<char*>(response.body.data()),
                                                MHD_RESPMEM_MUST_COPY));
  if (!r) return MHD_NO;
  if (!response.body.empty() && !response.content_type.empty() &&
      MHD_add_response_header(r.get(), MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str()) !=
          MHD_YES) {
    return MHD_NO;
  }
  // MHD holds a reference of its own once queued; ours is dropped by ResponsePtr.
  return MHD_queue_response(connection, static_cast<unsigned>(response.status), r.get());
}

HttpResponse too_large(const HttpServerOptions& opts) {
  return json_error(413, "PayloadTooLarge",
                    "request body exceeds the limit of " + std::to_string(opts.max_body) + " bytes");
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

std::optional<uint64_t> declared_length(MHD_Connection* connection) {
  const char* v = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (v == nullptr) return std::nullopt;
  uint64_t n = 0;
  const char* end = v + std::strlen(v);
  auto [p, ec] = std::from_chars(v, end, n);
  if (ec != std::errc{} || p != end) return std::nullopt;  // MHD itself rejects a malformed one
  return n;
}

MHD_Result on_access_impl(HttpServer::Impl& impl, MHD_Connection* connection, const char* url,
                          const char* method, const char* upload_data, size_t* upload_data_size,
                          void** con_cls) {
  auto* state = static_cast<RequestState*>(*con_cls);
  if (state == nullptr) {
    // First call: the headers are in, no body yet.
    auto fresh = std::make_unique<RequestState>();
    fresh->request.method = method;
    fresh->request.path = url;
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &collect_query, &fresh->request.query);
    *con_cls = fresh.release();  // MHD holds it until on_completed takes it back
    state = static_cast<RequestState*>(*con_cls);
    impl.active.fetch_add(1);
    auto length = declared_length(connection);
    if (length && *length > impl.opts.max_body) {
      // Answering before the body arrives makes MHD skip it and close the connection
      // afterwards, and it sends no "100 Continue" to a client that asked for one.
      state->too_large = true;
      return send_response(connection, too_large(impl.opts));
    }
    return MHD_YES;
  }

  if (*upload_data_size != 0) {
    // A piece of the body. A response cannot be queued now, only once the body is complete.
    const size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (!state->too_large && n <= impl.opts.max_body - state->request.body.size()) {
      state->request.body.append(upload_data, n);
      return MHD_YES;
    }
    // Over the limit without a Content-Length (chunked): drop what came, answer 413 at the
    // end. A client that keeps streaming far past the limit is cut off instead.
    if (!state->too_large) {
      state->too_large = true;
      state->discarded = state->request.body.size();
      std::string().swap(state->request.body);
    }
    state->discarded += n;
    return state->discarded > 2 * impl.opts.max_body + kConnectionMemory ? MHD_NO : MHD_YES;
  }

  // The request is complete.
  const HttpRequest& request = state->request;
  if (state->too_large) {
    spdlog::debug("http: {} {}: body over {} bytes, answered 413", request.method, request.path,
                  impl.opts.max_body);
    return send_response(connection, too_large(impl.opts));
  }
  HttpResponse response = call_handler(impl.handler, request);
  spdlog::debug("http: {} {} -> {}", request.method, request.path, response.status);
  return send_response(connection, response);
}

MHD_Result on_access(void* cls, MHD_Connection* connection, const char* url, const char* method,
                     const char* /*version*/, const char* upload_data, size_t* upload_data_size,
                     void** con_cls) {
  try {
    return on_access_impl(*static_cast<HttpServer::Impl*>(cls), connection, url, method, upload_data,
                          upload_data_size, con_cls);
  } catch (...) {
    // Only allocation failures get here (the handler's own exceptions are answered 500).
    return MHD_NO;  // MHD closes the connection
  }
}

void on_completed(void* cls, MHD_Connection* /*connection*/, void** con_cls,
                  MHD_RequestTerminationCode /*toe*/) {
  std::unique_ptr<RequestState> owned(static_cast<RequestState*>(*con_cls));
  if (owned) static_cast<HttpServer::Impl*>(cls)->active.fetch_sub(1);
  *con_cls = nullptr;
}

// ---- sockets ----

// Creates missing directories up to and including `dir`, each 0755.
Status make_dirs(const std::string& dir) {
  if (dir.empty()) return ok_status();
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return ok_status();
    return Error{ENOTDIR, "'" + dir + "' is not a directory"};
  }
  if (errno != ENOENT) return errno_error("stat '" + dir + "'");
  auto slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) FERRY_TRY(make_dirs(dir.substr(0, slash)));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errno_error("mkdir '" + dir + "'");
  return ok_status();
}

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty()) return Error{EINVAL, "empty unix socket path"};
  if (path.size() >= sizeof addr.sun_path) {
    return Error{ENAMETOOLONG, "unix socket path '" + path + "' is longer than " +
                                   std::to_string(sizeof addr.sun_path - 1) + " bytes"};
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

const char* file_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a fifo";
  return "not a socket";
}

// Makes `path` free for bind(): nothing there, or a socket nobody listens on (removed).
Status clear_stale_socket(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return ok_status();
    return errno_error("lstat '" + path + "'");
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Error{EEXIST,
                 "'" + path + "' exists and is " + file_kind(st.st_mode) + "; refusing to replace it"};
  }
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) return errno_error("socket");
  // Non-blocking: a live server with a full backlog answers EAGAIN instead of hanging us.
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN ||
      errno == EINPROGRESS) {
    return Error{EADDRINUSE, "'" + path + "' is in use by a live process"};
  }
  if (errno != ECONNREFUSED) return errno_error("cannot tell whether '" + path + "' is in use: connect");
  // Stale: its server is gone. Remove it (another starter may have raced us to it).
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return errno_error("removing stale socket '" + path + "'");
  spdlog::info("http: replaced stale socket '{}'", path);
  return ok_status();
}

// Unlinks `path` if it is still the socket file identified by (dev, ino).
void unlink_if_ours(const std::string& path, dev_t dev, ino_t ino) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev && st.st_ino == ino) {
    ::unlink(path.c_str());
  }
}

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

Result<std::unique_ptr<HttpServer::Impl>> start(UniqueFd listen_fd, HttpHandler handler,
                                                HttpServerOptions opts, std::string endpoint) {
  auto impl = std::make_unique<HttpServer::Impl>();
  impl->handler = std::move(handler);
  impl->opts = opts;
  impl->endpoint = std::move(endpoint);
  // One thread per connection: a handler may block for seconds (takeover, mount) while the
  // manager keeps polling the state; a pool would queue those polls behind it. poll(), not
  // select(): ferryd holds many fds and select() fails for fd >= 1024.
  const unsigned flags = static_cast<unsigned>(MHD_USE_INTERNAL_POLLING_THREAD) |
                         static_cast<unsigned>(MHD_USE_THREAD_PER_CONNECTION) |
                         static_cast<unsigned>(MHD_USE_POLL) | static_cast<unsigned>(MHD_USE_ERROR_LOG);
  // The variadic option list needs exactly the types MHD reads back (size_t, unsigned, int).
  MHD_Daemon* daemon =
      MHD_start_daemon(flags, 0, nullptr, nullptr, &on_access, impl.get(),                               //
                       MHD_OPTION_EXTERNAL_LOGGER, &log_from_mhd, nullptr,                               //
                       MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(listen_fd.get()),               //
                       MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,                            //
                       MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(opts.max_connections),         //
                       MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(opts.connection_timeout_s),  //
                       MHD_OPTION_NOTIFY_COMPLETED, &on_completed, impl.get(),                           //
                       MHD_OPTION_END);
  // From here the listen socket is MHD's: MHD_stop_daemon closes it, and so does a failing
  // MHD_start_daemon once past option parsing (libmicrohttpd 0.9.75; only an invalid option
  // set, which ours is not, fails earlier and leaves it open). Releasing it here therefore
  // risks at most a leak, never a double close of an fd another thread may have reopened.
  listen_fd.release();
  if (daemon == nullptr) return Error{EIO, "cannot start the HTTP server on '" + impl->endpoint + "'"};
  impl->daemon.reset(daemon);
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
  impl_->daemon.reset();
  if (!impl_->unix_path.empty()) unlink_if_ours(impl_->unix_path, impl_->dev, impl_->ino);
}

bool HttpServer::drain(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->active.load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

const std::string& HttpServer::endpoint() const {
  return impl_->endpoint;
}

Result<std::unique_ptr<HttpServer>> HttpServer::listen_unix(const std::string& path, HttpHandler handler,
                                                            HttpServerOptions opts) {
  FERRY_TRY(check_options(opts));
  FERRY_ASSIGN(sockaddr_un addr, unix_address(path));
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    if (auto made = make_dirs(path.substr(0, slash)); !made.ok()) {
      return std::move(made).error().context("creating the directory of '" + path + "'");
    }
  }
  FERRY_TRY(clear_stale_socket(path, addr));

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EADDRINUSE)
      return Error{EADDRINUSE, "'" + path + "' was taken by another process meanwhile"};
    return errno_error("bind '" + path + "'");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    Error e = errno_error("lstat '" + path + "' after bind");
    ::unlink(path.c_str());
    return e;
  }
  // The file exists from bind() on with the umask's mode; narrow it before listen() so that
  // nobody can connect while it is wider (connect() is refused until listen()).
  if (::chmod(path.c_str(), opts.socket_mode) != 0 || ::listen(fd.get(), SOMAXCONN) != 0) {
    Error e = errno_error("chmod/listen '" + path + "'");
    unlink_if_ours(path, st.st_dev, st.st_ino);
    return e;
  }
  auto impl = start(std::move(fd), std::move(handler), opts, path);
  if (!impl.ok()) {
    unlink_if_ours(path, st.st_dev, st.st_ino);
    return std::move(impl).error();
  }
  (*impl)->unix_path = path;
  (*impl)->dev = st.st_dev;
  (*impl)->ino = st.st_ino;
  spdlog::info("http: listening on unix socket '{}'", path);
  return std::make_unique<HttpServer>(std::move(*impl));
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

  FERRY_ASSIGN(auto impl, start(std::move(fd), std::move(handler), opts, endpoint));
  spdlog::info("http: listening on tcp {}", impl->endpoint);
  return std::make_unique<HttpServer>(std::move(impl));
}

}  // namespace ferry::http
