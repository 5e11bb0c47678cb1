// HttpTransport: one HTTP(S) exchange over libcurl, for the registry client. No redirects are
// followed (the client decides where an Authorization header may go), no retries (the client
// decides what is worth retrying), no credentials of its own (headers come from the caller).
//
// Every exchange has a deadline (connect, send and receive together) and a stall bound (no
// byte for stall_timeout ends it early, as ETIMEDOUT, so a retry can go on in time).
// Bodies stream: uploads from bytes or an fd, 2xx answers into a BodySink; a non-2xx answer's
// body is kept (up to 64 KiB) for the error message.
//
// Thread safety: perform() may run concurrently; curl handles are pooled (connections reused).
// Errors: ETIMEDOUT (deadline or stall), ECONNREFUSED, EHOSTUNREACH (resolve), ECONNRESET
// (connection broke or closed without an answer), EPROTO (TLS handshake or certificate), the
// sink's own error when it stopped the transfer, EIO otherwise. Messages name the URL's host
// and path, never a header value.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace ferry::oci {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

struct TlsOptions {
  bool skip_verify = false;
  std::vector<std::string> ca_files;  // PEM files trusted in addition to the system store
};

struct HttpResponse;

// Receives the body of a 2xx answer.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // Called once before the first byte of a 2xx body, with the status and headers. false
  // stops the transfer (as write() does).
  virtual bool begin(const HttpResponse& response) {
    (void)response;
    return true;
  }
  // The next piece. false stops the transfer: stop_status() then says whether that is a
  // failure (an error) or success (the sink has all it wanted).
  virtual bool write(const char* data, size_t size) = 0;
  [[nodiscard]] virtual Status stop_status() const = 0;
  // Back to empty, before a retry.
  virtual Status reset() = 0;
};

// Keeps up to `max` bytes; more is EMSGSIZE.
class StringSink final : public BodySink {
 public:
  explicit StringSink(size_t max) : max_(max) {}
  bool write(const char* data, size_t size) override;
  [[nodiscard]] Status stop_status() const override;
  Status reset() override;
  std::string& bytes() { return bytes_; }

 private:
  size_t max_;
  std::string bytes_;
};

struct HttpRequest {
  std::string method = "GET";          // GET, HEAD, PUT, POST, PATCH, DELETE
  std::string url;                      // absolute
  std::vector<std::string> headers;     // "Name: value" (may hold credentials: never logged)
  std::string_view body;                // PUT/POST body from memory ...
  int body_fd = -1;                     // ... or from this fd, pread from 0
  int64_t body_size = 0;                // with body_fd
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lowercased; the last value of a repeated header
  std::string error_body;                      // the body of a non-2xx answer (up to 64 KiB)
  int64_t body_bytes = 0;                      // bytes handed to the sink

  [[nodiscard]] std::string header(const std::string& lower_name) const {
    const auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct TransportOptions {
  TlsOptions tls;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds stall_timeout{30'000};
};

class HttpTransport {
 public:
  // Reads the CA files now: an unreadable one is an error naming it.
  static Result<std::unique_ptr<HttpTransport>> create(TransportOptions options);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // One exchange. The answer's status is not an error (a 404 is a successful exchange).
  Result<HttpResponse> perform(const HttpRequest& request, BodySink* sink, Deadline deadline) const;

  // Resolves `location` (absolute or relative) against `base`; EINVAL if it cannot be parsed.
  static Result<std::string> resolve_url(const std::string& base, const std::string& location);
  // "scheme://host:port" of an absolute URL (the default port made explicit), for same-origin checks.
  static std::string origin_of(const std::string& url);
  // Percent-encodes a query value.
  static std::string escape(std::string_view text);

 private:
  struct Pool;
  explicit HttpTransport(TransportOptions options, std::string ca_bundle);
  TransportOptions options_;
  std::string ca_bundle_;  // concatenated PEM of options_.tls.ca_files
  std::unique_ptr<Pool> pool_;
};

}  // namespace ferry::oci
