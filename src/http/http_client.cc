#include "http/http_client.h"

#include <curl/curl.h>

#include <cstring>
#include <memory>
#include <mutex>

namespace ferry::http {
namespace {

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// curl_global_init is not guaranteed thread-safe: run it exactly once, never clean up (other
// users in the process, if any, share the same global state).
Status curl_ready() {
  static std::once_flag once;
  static CURLcode init = CURLE_OK;
  std::call_once(once, [] { init = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (init != CURLE_OK) return Error{EIO, std::string("curl_global_init: ") + curl_easy_strerror(init)};
  return ok_status();
}

struct Sink {
  std::string body;
  bool overflow = false;
};

// libcurl's write callback (C linkage conventions: must not throw).
size_t on_data(char* data, size_t size, size_t nmemb, void* userdata) {
  auto* sink = static_cast<Sink*>(userdata);
  const size_t n = size * nmemb;
  if (n > kMaxResponseBody - sink->body.size()) {
    sink->overflow = true;
    return 0;  // makes curl fail with CURLE_WRITE_ERROR
  }
  try {
    sink->body.append(data, n);
  } catch (...) {
    return 0;
  }
  return n;
}

// curl_easy_setopt's result is only an error for unknown options or bad values, i.e. bugs
// here; one check at the end (via the first failure) keeps the setup readable.
class Setter {
 public:
  explicit Setter(CURL* easy) : easy_(easy) {}
  template <typename T>
  void operator()(CURLoption option, T value) {
    CURLcode rc = curl_easy_setopt(easy_, option, value);
    if (rc != CURLE_OK && first_error_ == CURLE_OK) first_error_ = rc;
  }
  [[nodiscard]] CURLcode error() const { return first_error_; }

 private:
  CURL* easy_;
  CURLcode first_error_ = CURLE_OK;
};

Result<HttpResponse> perform(const std::string& where, const std::string* unix_socket,
                             const std::string& url_base, const std::string& method,
                             const std::string& path_and_query, const std::string& body,
                             std::chrono::milliseconds timeout) {
  FERRY_TRY(curl_ready());
  if (path_and_query.empty() || path_and_query.front() != '/') {
    return Error{EINVAL, "request path '" + path_and_query + "' does not start with '/'"};
  }
  if (method.empty()) return Error{EINVAL, "empty HTTP method"};
  const std::string what = method + " " + path_and_query;

  EasyPtr easy(curl_easy_init());
  if (!easy) return Error{ENOMEM, "curl_easy_init failed"};
  SlistPtr headers;
  auto add_header = [&headers](const char* line) {
    curl_slist* grown = curl_slist_append(headers.get(), line);
    if (grown != nullptr) {
      (void)headers.release();  // the list was extended in place; `grown` owns it all
      headers.reset(grown);
    }
    return grown != nullptr;
  };
  // No "Expect: 100-continue" round trip (curl adds it for large bodies and then waits).
  if (!add_header("Expect:")) return Error{ENOMEM, "curl_slist_append failed"};
  if (!body.empty() && !add_header("Content-Type: application/json")) {
    return Error{ENOMEM, "curl_slist_append failed"};
  }

  Sink sink;
  char errbuf[CURL_ERROR_SIZE] = {};
  const std::string url = url_base + path_and_query;
  Setter set(easy.get());
  set(CURLOPT_URL, url.c_str());
  if (unix_socket != nullptr) set(CURLOPT_UNIX_SOCKET_PATH, unix_socket->c_str());
  set(CURLOPT_PROXY, "");     // never route local API calls through $http_proxy
  set(CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: safe in threads
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count()));
  set(CURLOPT_ERRORBUFFER, &errbuf[0]);
  set(CURLOPT_WRITEFUNCTION, &on_data);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&sink));
  set(CURLOPT_HTTPHEADER, headers.get());
  const bool send_body = !body.empty() || method == "PUT" || method == "POST" || method == "PATCH";
  if (method == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else if (method == "GET" && !send_body) {
    set(CURLOPT_HTTPGET, 1L);
  } else {
    set(CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (send_body) {
    // POSTFIELDS points into `body`, which outlives the transfer; nothing is copied.
    set(CURLOPT_POSTFIELDS, body.data());
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  if (set.error() != CURLE_OK) {
    return Error{EINVAL, std::string("setting up the request: ") + curl_easy_strerror(set.error())};
  }

  const CURLcode rc = curl_easy_perform(easy.get());
  if (rc != CURLE_OK) {
    long os_errno = 0;
    curl_easy_getinfo(easy.get(), CURLINFO_OS_ERRNO, &os_errno);
    const std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    switch (rc) {
      case CURLE_COULDNT_CONNECT: {
        const int err = os_errno != 0 ? static_cast<int>(os_errno) : ECONNREFUSED;
        return Error{err, "cannot connect to '" + where + "': " + std::strerror(err)};
      }
      case CURLE_OPERATION_TIMEDOUT:
        return Error{ETIMEDOUT, "no answer from '" + where + "' to " + what + " within " +
                                    std::to_string(timeout.count()) + " ms"};
      case CURLE_GOT_NOTHING:
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_PARTIAL_FILE:
        return Error{ECONNRESET, "'" + where + "' closed the connection during " + what + ": " + detail};
      case CURLE_WRITE_ERROR:
        if (sink.overflow) {
          return Error{EMSGSIZE, "the answer of '" + where + "' to " + what + " exceeds " +
                                     std::to_string(kMaxResponseBody) + " bytes"};
        }
        return Error{ENOMEM, "storing the answer of '" + where + "' to " + what + ": " + detail};
      default:
        return Error{EIO, what + " on '" + where + "': " + detail};
    }
  }

  HttpResponse response;
  long status = 0;
  curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  const char* content_type = nullptr;
  if (curl_easy_getinfo(easy.get(), CURLINFO_CONTENT_TYPE, &content_type) == CURLE_OK &&
      content_type != nullptr) {
    response.content_type = content_type;
  } else {
    response.content_type.clear();
  }
  response.body = std::move(sink.body);
  return response;
}

}  // namespace

Result<HttpResponse> http_request(const std::string& unix_socket, const std::string& method,
                                  const std::string& path_and_query, const std::string& body,
                                  std::chrono::milliseconds timeout) {
  // The host part only fills the Host header; the socket decides where the request goes.
  return perform(unix_socket, &unix_socket, "http://localhost", method, path_and_query, body, timeout);
}

Result<HttpResponse> http_request_tcp(const std::string& host_port, const std::string& method,
                                      const std::string& path_and_query, const std::string& body,
                                      std::chrono::milliseconds timeout) {
  return perform(host_port, nullptr, "http://" + host_port, method, path_and_query, body, timeout);
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
                            u == '-' || u == '.' || u == '_' || u == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

}  // namespace ferry::http
