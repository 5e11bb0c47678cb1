// HttpServer: the HTTP/1.1 control endpoint of ferryd and ferry-snapshotter (nydusd-compatible).
//
// One HttpServer listens on a unix domain socket (the API socket, mode 0600 by default) or on a
// loopback TCP address (metrics), and hands every complete request to one HttpHandler. The
// bytes are parsed by RequestParser (Boost.Beast underneath); the sockets, threads and limits
// are this class's:
//   - the handler sees only complete requests: the body is collected up to max_body; a larger
//     body is answered 413 by the server and the handler never runs; oversized headers are
//     answered 431 (414 for the request line alone); malformed requests get 400 and never
//     reach it; after an error answer the connection is closed;
//   - any method reaches the handler (it answers 400/404/405 itself); the URL path arrives
//     percent-decoded, query arguments decoded into a map;
//   - an exception thrown by the handler is caught and answered 500 with a JSON error;
//   - each connection has its own thread (bounded by max_connections), so a slow handler or a
//     slow or silent client never delays another; idle connections close after
//     connection_timeout_s.
//
// Thread safety: the handler is called concurrently from several threads and must be
// thread-safe. The destructor stops accepting, waits for the requests in progress (so the
// handler must return; it must never destroy its own server, which would wait for itself),
// closes the socket and removes the socket file it created, unless another process has
// replaced it since.
//
// Errors: listen_* return an Error naming the address and the reason; EADDRINUSE when a live
// process already serves the socket path.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace ferry::http {

struct HttpRequest {
  std::string method;                        // as sent: "GET", "PUT", or anything else
  std::string path;                          // percent-decoded, without the query
  std::map<std::string, std::string> query;  // decoded; a repeated key keeps its first value
  std::string body;                          // complete
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";  // sent only with a non-empty body
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  size_t max_body = 4 << 20;  // larger request bodies are answered 413
  // Connections served at once (one thread each); further connections are closed at accept.
  unsigned max_connections = 64;
  mode_t socket_mode = 0600;        // unix socket file mode, set before anyone can connect
  int connection_timeout_s = 10;    // an idle connection (no bytes moving) is closed after this
  bool allow_non_loopback = false;  // listen_tcp: permit addresses other than 127/8 and ::1
};

class HttpServer {
 public:
  // Listens on the unix socket `path` (an ipc::UnixListener, whose rules these are). Creates
  // the parent directory (0755) if missing. An existing socket file is replaced when no process
  // answers on it (stale), refused with EADDRINUSE when one does; anything else at the path
  // (a regular file, directory, symlink: never a stale socket) is refused with EEXIST and left
  // alone.
  static Result<std::unique_ptr<HttpServer>> listen_unix(const std::string& path, HttpHandler handler,
                                                         HttpServerOptions opts = {});

  // Listens on "HOST:PORT" ("127.0.0.1:9110", "[::1]:9110", "localhost:0"; port 0 picks a free
  // port, see endpoint()). Hosts other than loopback are refused (EACCES) unless
  // opts.allow_non_loopback.
  static Result<std::unique_ptr<HttpServer>> listen_tcp(const std::string& host_port, HttpHandler handler,
                                                        HttpServerOptions opts = {});

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Waits until every request begun has been answered completely (its response written), at
  // most `timeout`; false on timeout. For a process about to exit after answering a request.
  bool drain(std::chrono::milliseconds timeout);

  // The socket path, or "HOST:PORT" with the port actually bound.
  [[nodiscard]] const std::string& endpoint() const;

  struct Impl;  // sockets and threads stay out of this header; only listen_* can make one
  explicit HttpServer(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// The standard reason phrase of an HTTP status ("Not Found"), or "" for a code without one.
std::string_view reason_phrase(int status);

}  // namespace ferry::http
