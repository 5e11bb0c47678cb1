// RequestParser: turns the bytes arriving on one HTTP/1.1 connection into complete requests.
//
// The wire parsing (request line, headers, Content-Length and chunked bodies, pipelining) is
// Boost.Beast's; this class adds what HttpServer promises on top of it: limits that end in a
// definite status (413 for a body over max_body, declared or streamed; 431 for headers over
// the header limit; 414 for a request line that alone exceeds it; 400 for anything malformed),
// the path percent-decoded and the query decoded into a map, and the "100 Continue" moment.
// It never touches a socket, so every byte sequence can be fed to it (fuzz/http_request_fuzz).
//
// Not thread-safe: one parser per connection. After kError the connection must be answered
// with error_status() and closed; the parser accepts nothing more.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "http/http_server.h"

namespace ferry::http {

class RequestParser {
 public:
  // Request line + headers larger than this are refused (431, or 414 for the line alone).
  static constexpr size_t kHeaderLimit = 32 << 10;

  explicit RequestParser(size_t max_body);
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Bytes received from the peer, in order.
  void append(std::string_view bytes);
  // The peer sent its last byte (read returned 0). A request cut short becomes an error.
  void end_of_input();

  enum class Step {
    kNeedMore,  // nothing complete yet: read more (or, after end_of_input, close quietly)
    kContinue,  // headers in, the client waits for "100 Continue" before sending the body
    kRequest,   // a complete request: take_request(), answer it, then call next() again
    kError,     // malformed or over a limit: answer error_status() and close
  };
  Step next();

  // The request completed by the last kRequest.
  HttpRequest take_request();
  // Whether the connection stays open after answering it (HTTP/1.1 unless "Connection: close";
  // HTTP/1.0 only with "keep-alive").
  [[nodiscard]] bool keep_alive() const { return keep_alive_; }
  // Whether a HEAD request: the answer carries headers only.
  [[nodiscard]] bool head() const { return head_; }

  [[nodiscard]] int error_status() const { return error_status_; }
  [[nodiscard]] const std::string& error_message() const { return error_message_; }
  // Bytes received and not yet parsed (pipelined requests wait here).
  [[nodiscard]] size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  struct Beast;  // the Beast parser of the request in progress; Beast stays out of this header
  void start_request();
  Step fail(int status, std::string message);

  size_t max_body_;
  std::unique_ptr<Beast> beast_;
  std::string buffer_;  // received bytes; [consumed_, size) not parsed yet
  size_t consumed_ = 0;
  size_t request_consumed_ = 0;  // bytes of the request in progress that Beast has taken
  bool eof_ = false;
  bool continue_sent_ = false;
  bool keep_alive_ = false;
  bool head_ = false;
  int error_status_ = 0;
  std::string error_message_;
  HttpRequest request_;
};

// Percent-decodes `s`; '+' becomes a space when `plus_is_space` (query strings, as form
// encoders such as Go's url.Values write them). Invalid escapes are kept as they are.
std::string percent_decode(std::string_view s, bool plus_is_space);

}  // namespace ferry::http
