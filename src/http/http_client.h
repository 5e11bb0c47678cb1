// http_request: one blocking HTTP/1.1 request to a ferry or nydus API socket, via libcurl.
//
// Used by the manager to drive daemons, by tools and by tests. Each call opens its own
// connection and closes it afterwards: API traffic is a handful of requests, and a fresh
// connection cannot inherit a broken state from an earlier one.
//
// Thread safety: calls may run concurrently from any threads (libcurl is initialised once,
// on first use; no signals are used for timeouts).
//
// Errors (the HTTP status of an answer is not an error: a 404 is a successful round trip):
//   ENOENT / ECONNREFUSED (or the connect errno, e.g. EACCES): "cannot connect to '<where>': ..."
//   ETIMEDOUT: no complete answer within `timeout` (connecting included)
//   ECONNRESET: the server closed the connection without a (complete) answer
//   EMSGSIZE: the answer body exceeded kMaxResponseBody
//   EINVAL: path_and_query does not start with '/'
//   EIO: anything else libcurl reports, with its message
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.h"
#include "http/http_server.h"

namespace ferry::http {

inline constexpr size_t kMaxResponseBody = 64 << 20;

// Sends `method` (any token: GET, PUT, ...) for `path_and_query` ("/api/v1/mount?mountpoint=%2Fa",
// already escaped; see url_encode) to the server on the unix socket. A non-empty body is sent
// with Content-Type: application/json; PUT and POST always send a Content-Length. The answer's
// content_type is the server's Content-Type header (empty if none).
Result<HttpResponse> http_request(const std::string& unix_socket, const std::string& method,
                                  const std::string& path_and_query, const std::string& body = {},
                                  std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The same over TCP to "HOST:PORT" ("127.0.0.1:9110", "[::1]:9110").
Result<HttpResponse> http_request_tcp(const std::string& host_port, const std::string& method,
                                      const std::string& path_and_query, const std::string& body = {},
                                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Percent-encodes everything but RFC 3986 unreserved characters, for a query value or a path
// segment: url_encode("/a b") == "%2Fa%20b". The server decodes it back.
std::string url_encode(std::string_view text);

}  // namespace ferry::http
