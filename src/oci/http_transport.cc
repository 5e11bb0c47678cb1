#include "oci/http_transport.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "oci/file_util.h"

namespace ferry::oci {

namespace {

constexpr size_t kMaxErrorBody = 64 << 10;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_ALL); });
}

// Host and path of a URL, without the query (which may carry a scope, never a secret, but
// keep messages short).
std::string shown_url(const std::string& url) { return url.substr(0, url.find('?')); }

struct Exchange {
  CURL* handle = nullptr;
  BodySink* sink = nullptr;
  HttpResponse response;
  bool sink_stopped = false;
  bool sink_begun = false;
  const HttpRequest* request = nullptr;
  int64_t upload_pos = 0;
  int upload_errno = 0;
};

long status_of(CURL* h) {
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  const std::string_view line(data, size * n);
  if (line.substr(0, 5) == "HTTP/") {  // a new response (e.g. after 100 Continue): start over
    x->response.headers.clear();
    return line.size();
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return line.size();
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.remove_suffix(1);
  x->response.headers[name] = std::string(value);
  return line.size();
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  const size_t len = size * n;
  const long status = status_of(x->handle);
  if (status >= 200 && status < 300 && x->sink != nullptr) {
    if (!x->sink_begun) {
      x->sink_begun = true;
      x->response.status = status;
      if (!x->sink->begin(x->response)) {
        x->sink_stopped = true;
        return 0;
      }
    }
    if (!x->sink->write(data, len)) {
      x->sink_stopped = true;
      return 0;  // CURLE_WRITE_ERROR: the transfer stops here
    }
    x->response.body_bytes += static_cast<int64_t>(len);
    return len;
  }
  if (status < 200 || status >= 300) {
    const size_t room = kMaxErrorBody - std::min(kMaxErrorBody, x->response.error_body.size());
    x->response.error_body.append(data, std::min(room, len));
  }
  return len;
}

size_t on_upload(char* buffer, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  const HttpRequest& r = *x->request;
  const size_t want = size * n;
  if (r.body_fd >= 0) {
    const int64_t left = r.body_size - x->upload_pos;
    if (left <= 0) return 0;
    while (true) {
      const ssize_t got = ::pread(r.body_fd, buffer, std::min<size_t>(want, static_cast<size_t>(left)), x->upload_pos);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        x->upload_errno = got < 0 ? errno : EIO;  // a file shorter than its size
        return CURL_READFUNC_ABORT;
      }
      x->upload_pos += got;
      return static_cast<size_t>(got);
    }
  }
  const size_t left = r.body.size() - static_cast<size_t>(x->upload_pos);
  const size_t take = std::min(left, want);
  std::copy_n(r.body.data() + x->upload_pos, take, buffer);
  x->upload_pos += static_cast<int64_t>(take);
  return take;
}

int errno_of(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return ETIMEDOUT;
    case CURLE_COULDNT_CONNECT: return ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST: return EHOSTUNREACH;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return ECONNRESET;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM: return EPROTO;
    case CURLE_URL_MALFORMAT: return EINVAL;
    default: return EIO;
  }
}

}  // namespace

struct HttpTransport::Pool {
  std::mutex mu;
  std::vector<CURL*> idle;
  ~Pool() {
    for (CURL* h : idle) curl_easy_cleanup(h);
  }
  CURL* take() {
    {
      std::lock_guard lock(mu);
      if (!idle.empty()) {
        CURL* h = idle.back();
        idle.pop_back();
        curl_easy_reset(h);  // keeps its connections, forgets the last request's options
        return h;
      }
    }
    return curl_easy_init();
  }
  void give_back(CURL* h) {
    std::lock_guard lock(mu);
    if (idle.size() < 16) {
      idle.push_back(h);
    } else {
      curl_easy_cleanup(h);
    }
  }
};

bool StringSink::write(const char* data, size_t size) {
  if (bytes_.size() + size > max_) return false;
  bytes_.append(data, size);
  return true;
}
Status StringSink::stop_status() const {
  return Error{EMSGSIZE, "the answer is larger than the limit of " + std::to_string(max_) + " bytes"};
}
Status StringSink::reset() {
  bytes_.clear();
  return {};
}

HttpTransport::HttpTransport(TransportOptions options, std::string ca_bundle)
    : options_(std::move(options)), ca_bundle_(std::move(ca_bundle)), pool_(std::make_unique<Pool>()) {}
HttpTransport::~HttpTransport() = default;

Result<std::unique_ptr<HttpTransport>> HttpTransport::create(TransportOptions options) {
  global_init();
  std::string bundle;
  for (const auto& file : options.tls.ca_files) {
    auto pem = read_file_bounded(file, 16 << 20);
    if (!pem) return std::move(pem).error().context("reading CA certificate file");
    if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return Error{EINVAL, "CA certificate file " + file + " holds no PEM certificate"};
    }
    bundle += *pem;
    bundle += '\n';
  }
  return std::unique_ptr<HttpTransport>(new HttpTransport(std::move(options), std::move(bundle)));
}

Result<HttpResponse> HttpTransport::perform(const HttpRequest& request, BodySink* sink, Deadline deadline) const {
  const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  const std::string what = request.method + " " + shown_url(request.url);
  if (remaining.count() <= 0) return Error{ETIMEDOUT, what + ": deadline passed before the request was sent"};

  CURL* h = pool_->take();
  if (h == nullptr) return Error{ENOMEM, what + ": cannot create a curl handle"};
  Exchange x;
  x.handle = h;
  x.sink = sink;
  x.request = &request;
  curl_slist* headers = nullptr;
  for (const auto& header : request.headers) headers = curl_slist_append(headers, header.c_str());
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip on uploads

  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min(remaining, options_.connect_timeout).count()));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                   std::max(1L, static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(options_.stall_timeout).count())));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "ferry-oci/0.1");
  if (options_.tls.skip_verify) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  } else if (!ca_bundle_.empty()) {
    curl_blob blob{const_cast<char*>(ca_bundle_.data()), ca_bundle_.size(), CURL_BLOB_NOCOPY};
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
  }
  const bool upload = request.method == "PUT" || request.method == "POST" || request.method == "PATCH";
  if (request.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (upload) {
    const int64_t size = request.body_fd >= 0 ? request.body_size : static_cast<int64_t>(request.body.size());
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
    curl_easy_setopt(h, CURLOPT_READDATA, &x);
  } else if (request.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  char curl_message[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_message);

  const CURLcode rc = curl_easy_perform(h);
  x.response.status = status_of(h);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  pool_->give_back(h);

  if (rc == CURLE_WRITE_ERROR && x.sink_stopped) {
    Status stop = sink->stop_status();
    if (!stop.ok()) return std::move(stop).error().context(what);
    return std::move(x.response);  // the sink has all it wanted
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK && x.upload_errno != 0) {
    return errno_error(x.upload_errno, what + ": reading the upload body");
  }
  if (rc != CURLE_OK) {
    std::string detail = curl_message[0] != '\0' ? curl_message : curl_easy_strerror(rc);
    if (rc == CURLE_OPERATION_TIMEDOUT && Clock::now() >= deadline) detail = "deadline reached: " + detail;
    return Error{errno_of(rc), what + ": " + detail};
  }
  return std::move(x.response);
}

Result<std::string> HttpTransport::resolve_url(const std::string& base, const std::string& location) {
  CURLU* u = curl_url();
  if (u == nullptr) return Error{ENOMEM, "curl_url"};
  std::string out;
  char* full = nullptr;
  if (curl_url_set(u, CURLUPART_URL, base.c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_URL, location.c_str(), 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK) {
    out = full;
  }
  curl_free(full);
  curl_url_cleanup(u);
  if (out.empty()) return Error{EINVAL, "cannot resolve the redirect location '" + shown_url(location) + "'"};
  return out;
}

std::string HttpTransport::origin_of(const std::string& url) {
  CURLU* u = curl_url();
  std::string out;
  if (u != nullptr && curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (scheme != nullptr && host != nullptr && port != nullptr) {
      std::string h = host;
      for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out = std::string(scheme) + "://" + h + ":" + port;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

std::string HttpTransport::escape(std::string_view text) {
  global_init();
  char* escaped = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  std::string out = escaped != nullptr ? escaped : "";
  curl_free(escaped);
  return out;
}

}  // namespace ferry::oci
