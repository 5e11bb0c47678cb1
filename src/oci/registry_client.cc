#include "oci/registry_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "oci/base64.h"
#include "oci/file_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/reference.h"

namespace ferry::oci {

struct RegistryClient::Call {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;
  std::string_view body;
  int body_fd = -1;
  int64_t body_size = 0;
  std::string scope;  // "repository:R:pull" or ":pull,push"
  std::string what;   // "registry H, repository R, blob D"
  bool retry = true;
};

namespace {

std::string pull_scope(const std::string& repo) { return "repository:" + repo + ":pull"; }
std::string push_scope(const std::string& repo) { return "repository:" + repo + ":pull,push"; }

int errno_for_status(long status) {
  if (status == 401 || status == 403) return EACCES;
  if (status == 404) return ENOENT;
  if (status == 416) return ERANGE;
  if (status == 429) return EAGAIN;
  if (status >= 500) return EIO;
  return EPROTO;
}

std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  return out;
}

bool retryable_error(const Error& e) {
  return e.code == ECONNREFUSED || e.code == ECONNRESET || e.code == ETIMEDOUT || e.code == EHOSTUNREACH;
}

bool retryable_status(long status) { return status == 429 || status == 500 || status == 502 || status == 503 || status == 504; }

std::string path_of(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash, url.find('?', slash) - slash);
}

// Writes into a caller's buffer from `offset` of the blob: 206 bodies start there, a 200 body
// (a registry that ignored Range) is skipped up to it. Stops, satisfied, once full.
class SpanSink final : public BodySink {
 public:
  SpanSink(std::span<std::byte> out, uint64_t offset) : out_(out), offset_(offset) {}
  bool begin(const HttpResponse& r) override {
    skip_ = r.status == 200 ? offset_ : 0;
    return true;
  }
  bool write(const char* data, size_t size) override {
    if (skip_ > 0) {
      const uint64_t drop = std::min<uint64_t>(skip_, size);
      skip_ -= drop;
      data += drop;
      size -= static_cast<size_t>(drop);
    }
    const size_t take = std::min(size, out_.size() - pos_);
    std::memcpy(out_.data() + pos_, data, take);
    pos_ += take;
    return pos_ < out_.size();
  }
  [[nodiscard]] Status stop_status() const override { return {}; }
  Status reset() override {
    pos_ = 0;
    skip_ = 0;
    return {};
  }
  [[nodiscard]] size_t filled() const { return pos_; }

 private:
  std::span<std::byte> out_;
  uint64_t offset_;
  uint64_t skip_ = 0;
  size_t pos_ = 0;
};

// Hashes into a file, truncated again on reset.
class FileSink final : public BodySink {
 public:
  explicit FileSink(int fd) : fd_(fd) {}
  bool write(const char* data, size_t size) override {
    hash_.update(data, size);
    size_ += static_cast<int64_t>(size);
    status_ = write_all(fd_, data, size);
    return status_.ok();
  }
  [[nodiscard]] Status stop_status() const override {
    return status_.ok() ? status_ : status_.error().context("writing the blob file");
  }
  Status reset() override {
    hash_ = Sha256();
    size_ = 0;
    if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) return errno_error("truncating the blob file");
    return {};
  }
  Digest finish() { return hash_.finish(); }
  [[nodiscard]] int64_t size() const { return size_; }

 private:
  int fd_;
  Sha256 hash_;
  int64_t size_ = 0;
  Status status_;
};

}  // namespace

Error registry_http_error(const std::string& context, const HttpResponse& response) {
  std::string detail;
  const auto j = nlohmann::json::parse(response.error_body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    const auto& e = j["errors"][0];
    if (e.is_object()) {
      if (e.contains("code") && e["code"].is_string()) detail = e["code"].get<std::string>();
      if (e.contains("message") && e["message"].is_string()) {
        detail += (detail.empty() ? "" : ": ") + e["message"].get<std::string>();
      }
    }
  } else if (!response.error_body.empty()) {
    detail = response.error_body;
  }
  // What a 401 that survived the auth flow means (a HEAD carries no body to say it).
  if (response.status == 401 && detail.empty()) detail = "the registry refused the credentials";
  std::string message = context + ": HTTP " + std::to_string(response.status);
  if (!detail.empty()) message += " (" + printable(detail, 200) + ")";
  return {errno_for_status(response.status), message};
}

RegistryClient::RegistryClient(RegistryOptions options, std::unique_ptr<HttpTransport> transport)
    : options_(std::move(options)), transport_(std::move(transport)) {}
RegistryClient::~RegistryClient() = default;

Result<std::unique_ptr<RegistryClient>> RegistryClient::create(RegistryOptions options) {
  // A host is valid when HOST/x parses as a reference.
  auto probe = ImageReference::parse(options.host + "/x");
  if (!probe || probe->host != options.host) return Error{EINVAL, "invalid registry host '" + options.host + "'"};
  TransportOptions t;
  t.tls = options.tls;
  t.connect_timeout = options.connect_timeout;
  t.stall_timeout = options.stall_timeout;
  FERRY_ASSIGN(auto transport, HttpTransport::create(std::move(t)));
  return std::unique_ptr<RegistryClient>(new RegistryClient(std::move(options), std::move(transport)));
}

std::string RegistryClient::base_url() const { return (options_.plain_http ? "http://" : "https://") + options_.host; }

Deadline RegistryClient::deadline_or(std::optional<Deadline> d, std::chrono::milliseconds dflt) const {
  return d ? *d : Clock::now() + dflt;
}

Result<std::optional<std::string>> RegistryClient::authorization_for(const std::string& scope, Deadline deadline) const {
  const Credentials& c = options_.credentials;
  if (!c.registry_token.empty()) return std::optional<std::string>("Authorization: Bearer " + c.registry_token);
  if (auto token = tokens_.get(scope)) return std::optional<std::string>("Authorization: Bearer " + *token);
  std::optional<AuthChallenge> challenge;
  {
    std::lock_guard lock(challenge_mu_);
    challenge = bearer_challenge_;
  }
  if (challenge) {  // a Bearer registry whose token for this scope is missing or due: get one first
    FERRY_TRY(refresh_token(*challenge, scope, deadline));
    if (auto token = tokens_.get(scope)) return std::optional<std::string>("Authorization: Bearer " + *token);
  }
  if (basic_required_.load() && c.has_basic()) {
    return std::optional<std::string>("Authorization: Basic " + base64_encode(c.username + ":" + c.password));
  }
  return std::optional<std::string>();
}

Status RegistryClient::refresh_token(const AuthChallenge& challenge, const std::string& scope, Deadline deadline) const {
  std::lock_guard lock(token_fetch_mu_);  // one fetch at a time; others find its token
  if (tokens_.get(scope)) return {};
  stats_.token_fetches++;
  stats_.requests++;
  auto token = fetch_token(*transport_, challenge, scope, options_.credentials, deadline);
  if (!token) return std::move(token).error().context("registry " + options_.host + ", scope " + scope);
  tokens_.put(scope, token->value, token->lifetime);
  return {};
}

Status RegistryClient::authenticate(const HttpResponse& response, const std::optional<std::string>& sent,
                                    const std::string& scope, Deadline deadline) const {
  const std::string www = response.header("www-authenticate");
  const auto challenge = parse_auth_challenge(www);
  const std::string who = "registry " + options_.host;
  if (!challenge) return Error{EACCES, who + " answered 401 without an authentication challenge"};
  if (challenge->scheme == "bearer") {
    {
      std::lock_guard lock(challenge_mu_);
      bearer_challenge_ = *challenge;
    }
    constexpr std::string_view kBearer = "Authorization: Bearer ";
    if (sent && sent->starts_with(kBearer)) tokens_.drop_if(scope, sent->substr(kBearer.size()));
    return refresh_token(*challenge, scope, deadline);
  }
  if (challenge->scheme == "basic") {
    if (!options_.credentials.has_basic()) return Error{EACCES, who + " requires credentials (Basic auth); none were given"};
    basic_required_.store(true);
    return {};
  }
  return Error{EACCES, who + " asks for unsupported authentication scheme '" + challenge->scheme + "'"};
}

Result<HttpResponse> RegistryClient::follow(const Call& call, const std::optional<std::string>& authorization,
                                            BodySink* sink, Deadline deadline) const {
  const std::string registry_origin = HttpTransport::origin_of(base_url());
  std::string url = call.url;
  std::string method = call.method;
  for (int hop = 0; hop <= 5; ++hop) {
    HttpRequest request;
    request.method = method;
    request.url = url;
    request.headers = call.headers;
    if (authorization && HttpTransport::origin_of(url) == registry_origin) request.headers.push_back(*authorization);
    if (method == call.method) {
      request.body = call.body;
      request.body_fd = call.body_fd;
      request.body_size = call.body_size;
    }
    stats_.requests++;
    auto response = transport_->perform(request, sink, deadline);
    if (!response) {
      spdlog::debug("registry {}: {} {} failed: {}", options_.host, method, path_of(url), response.error().message);
      return std::move(response).error().context(call.what);
    }
    stats_.bytes_received += static_cast<uint64_t>(response->body_bytes);
    spdlog::debug("registry {}: {} {} -> {}", options_.host, method, path_of(url), response->status);
    const long s = response->status;
    const bool redirect = s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
    const std::string location = response->header("location");
    if (!redirect || location.empty() || call.method == "POST") return response;
    FERRY_ASSIGN(url, HttpTransport::resolve_url(url, location));
    if (s == 303) method = "GET";
  }
  return Error{EPROTO, call.what + ": more than 5 redirects"};
}

Result<HttpResponse> RegistryClient::execute_once_authed(const Call& call, BodySink* sink, Deadline deadline) const {
  auto authorization = authorization_for(call.scope, deadline);
  if (!authorization) return std::move(authorization).error().context(call.what);
  auto response = follow(call, *authorization, sink, deadline);
  if (!response || response->status != 401 || !options_.credentials.registry_token.empty()) return response;
  // Once more with fresh credentials: a token that expired early, or a first Basic challenge.
  if (sink != nullptr) FERRY_TRY(sink->reset());
  if (auto st = authenticate(*response, *authorization, call.scope, deadline); !st) return std::move(st).error().context(call.what);
  auto again = authorization_for(call.scope, deadline);
  if (!again) return std::move(again).error().context(call.what);
  if (!*again || *again == *authorization) return response;
  return follow(call, *again, sink, deadline);
}

Result<HttpResponse> RegistryClient::execute(const Call& call, BodySink* sink, Deadline deadline) const {
  auto backoff = options_.backoff;
  for (int attempt = 0;; ++attempt) {
    if (sink != nullptr) FERRY_TRY(sink->reset());
    auto response = execute_once_authed(call, sink, deadline);
    const bool again = response.ok() ? retryable_status(response->status) : retryable_error(response.error());
    if (!again || !call.retry || attempt >= options_.retry_limit) return response;
    const auto left = deadline - Clock::now();
    if (left <= backoff) return response;  // no time for another try
    spdlog::debug("registry {}: {} retry {} in {} ms", options_.host, call.what, attempt + 1, backoff.count());
    stats_.retries++;
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
  }
}

Result<FetchedManifest> RegistryClient::get_manifest(const std::string& repo, const std::string& reference,
                                                     std::optional<Deadline> deadline) const {
  Call call;
  call.url = base_url() + "/v2/" + repo + "/manifests/" + reference;
  call.headers.push_back("Accept: " + std::string(media_type::kManifestAccept));
  call.scope = pull_scope(repo);
  call.what = "registry " + options_.host + ", repository " + repo + ", manifest " + reference;
  StringSink sink(kMaxManifestSize);
  FERRY_ASSIGN(const HttpResponse response, execute(call, &sink, deadline_or(deadline, options_.timeout)));
  if (response.status != 200) return registry_http_error(call.what, response);
  FetchedManifest m;
  m.bytes = std::move(sink.bytes());
  m.media_type = response.header("content-type");
  m.digest = Digest::of(m.bytes);
  if (auto wanted = Digest::parse(reference); wanted && *wanted != m.digest) {
    return digest_mismatch(call.what, *wanted, m.digest);
  }
  return m;
}

Result<Descriptor> RegistryClient::head_manifest(const std::string& repo, const std::string& reference,
                                                 std::optional<Deadline> deadline) const {
  Call call;
  call.method = "HEAD";
  call.url = base_url() + "/v2/" + repo + "/manifests/" + reference;
  call.headers.push_back("Accept: " + std::string(media_type::kManifestAccept));
  call.scope = pull_scope(repo);
  call.what = "registry " + options_.host + ", repository " + repo + ", manifest " + reference;
  FERRY_ASSIGN(const HttpResponse response, execute(call, nullptr, deadline_or(deadline, options_.timeout)));
  if (response.status != 200) return registry_http_error(call.what, response);
  Descriptor d;
  d.media_type = response.header("content-type");
  auto digest = Digest::parse(response.header("docker-content-digest"));
  if (!digest) digest = Digest::parse(reference);
  if (!digest) return Error{EPROTO, call.what + ": the answer carries no Docker-Content-Digest"};
  d.digest = std::move(digest).value();
  d.size = std::strtoll(response.header("content-length").c_str(), nullptr, 10);
  return d;
}

Result<Digest> RegistryClient::put_manifest(const std::string& repo, const std::string& reference,
                                            std::string_view media_type, std::string_view bytes,
                                            std::optional<Deadline> deadline) const {
  Call call;
  call.method = "PUT";
  call.url = base_url() + "/v2/" + repo + "/manifests/" + reference;
  call.headers.push_back("Content-Type: " + std::string(media_type));
  call.body = bytes;
  call.scope = push_scope(repo);
  call.what = "registry " + options_.host + ", repository " + repo + ", manifest " + reference;
  FERRY_ASSIGN(const HttpResponse response, execute(call, nullptr, deadline_or(deadline, options_.timeout)));
  if (response.status != 201 && response.status != 200 && response.status != 202) {
    return registry_http_error("pushing " + call.what, response);
  }
  const Digest digest = Digest::of(bytes);
  if (auto said = Digest::parse(response.header("docker-content-digest")); said && *said != digest) {
    return Error{EPROTO, call.what + ": the registry stored digest " + said->str() + ", the manifest is " + digest.str()};
  }
  return digest;
}

Result<std::optional<int64_t>> RegistryClient::head_blob(const std::string& repo, const Digest& digest,
                                                         std::optional<Deadline> deadline) const {
  Call call;
  call.method = "HEAD";
  call.url = base_url() + "/v2/" + repo + "/blobs/" + digest.str();
  call.scope = pull_scope(repo);
  call.what = "registry " + options_.host + ", repository " + repo + ", blob " + digest.str();
  FERRY_ASSIGN(const HttpResponse response, execute(call, nullptr, deadline_or(deadline, options_.timeout)));
  if (response.status == 404) return std::optional<int64_t>();
  if (response.status != 200) return registry_http_error(call.what, response);
  return std::optional<int64_t>(std::strtoll(response.header("content-length").c_str(), nullptr, 10));
}

Result<std::string> RegistryClient::get_blob(const std::string& repo, const Descriptor& d, size_t max_size,
                                             std::optional<Deadline> deadline) const {
  Call call;
  call.url = base_url() + "/v2/" + repo + "/blobs/" + d.digest.str();
  call.scope = pull_scope(repo);
  call.what = "registry " + options_.host + ", repository " + repo + ", blob " + d.digest.str();
  StringSink sink(max_size);
  FERRY_ASSIGN(const HttpResponse response, execute(call, &sink, deadline_or(deadline, options_.transfer_timeout)));
  if (response.status != 200) return registry_http_error(call.what, response);
  std::string bytes = std::move(sink.bytes());
  if (d.size > 0 && static_cast<int64_t>(bytes.size()) != d.size) {
    return Error{EBADMSG, call.what + ": got " + std::to_string(bytes.size()) + " bytes, the descriptor says " +
                              std::to_string(d.size)};
  }
  if (const Digest actual = Digest::of(bytes); actual != d.digest) return digest_mismatch(call.what, d.digest, actual);
  return bytes;
}

Status RegistryClient::get_blob_to_file(const std::string& repo, const Descriptor& d, const std::string& path,
                                        std::optional<Deadline> deadline) const {
  Call call;
  call.url = base_url() + "/v2/" + repo + "/blobs/" + d.digest.str();
  call.scope = pull_scope(repo);
  call.what = "registry " + options_.host + ", repository " + repo + ", blob " + d.digest.str();
  FERRY_ASSIGN(TempFile tmp, TempFile::beside(path));
  FileSink sink(tmp.fd());
  FERRY_ASSIGN(const HttpResponse response, execute(call, &sink, deadline_or(deadline, options_.transfer_timeout)));
  if (response.status != 200) return registry_http_error(call.what, response);
  if (d.size > 0 && sink.size() != d.size) {
    return Error{EBADMSG, call.what + ": got " + std::to_string(sink.size()) + " bytes, the descriptor says " +
                              std::to_string(d.size)};
  }
  if (const Digest actual = sink.finish(); actual != d.digest) return digest_mismatch(call.what, d.digest, actual);
  return tmp.commit(path);
}

Status RegistryClient::read_blob_range(const std::string& repo, const Digest& digest, uint64_t offset,
                                       std::span<std::byte> out, std::optional<Deadline> deadline) const {
  Call call;
  call.url = base_url() + "/v2/" + repo + "/blobs/" + digest.str();
  call.scope = pull_scope(repo);
  call.what = "registry " + options_.host + ", repository " + repo + ", blob " + digest.str() + ", bytes " +
              std::to_string(offset) + "+" + std::to_string(out.size());
  if (out.empty()) return {};
  call.headers.push_back("Range: bytes=" + std::to_string(offset) + "-" + std::to_string(offset + out.size() - 1));
  SpanSink sink(out, offset);
  FERRY_ASSIGN(const HttpResponse response, execute(call, &sink, deadline_or(deadline, options_.timeout)));
  if (response.status != 206 && response.status != 200) return registry_http_error(call.what, response);
  if (sink.filled() != out.size()) {
    return Error{ERANGE, call.what + ": the blob ended after " + std::to_string(sink.filled()) + " of the bytes"};
  }
  return {};
}

Result<bool> RegistryClient::push(const std::string& repo, const Descriptor& d, std::string_view bytes, int fd,
                                  std::optional<Deadline> deadline) const {
  const Deadline until = deadline_or(deadline, options_.transfer_timeout);
  const std::string what = "registry " + options_.host + ", repository " + repo + ", blob " + d.digest.str();
  FERRY_ASSIGN(const auto existing, head_blob(repo, d.digest, until));
  if (existing) {
    spdlog::debug("{}: already present, not pushed", what);
    return false;
  }
  Error last{EIO, what + ": not pushed"};
  auto backoff = options_.backoff;
  for (int attempt = 0; attempt <= options_.retry_limit; ++attempt) {
    Call start;
    start.method = "POST";
    start.url = base_url() + "/v2/" + repo + "/blobs/uploads/";
    start.scope = push_scope(repo);
    start.what = "starting an upload: " + what;
    FERRY_ASSIGN(const HttpResponse started, execute(start, nullptr, until));
    if (started.status != 202) return registry_http_error(start.what, started);
    const std::string location = started.header("location");
    if (location.empty()) return Error{EPROTO, start.what + ": the answer carries no Location"};
    FERRY_ASSIGN(std::string url, HttpTransport::resolve_url(start.url, location));
    url += (url.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + HttpTransport::escape(d.digest.str());
    Call put;
    put.method = "PUT";
    put.url = url;
    put.headers.push_back("Content-Type: application/octet-stream");
    put.body = bytes;
    put.body_fd = fd;
    put.body_size = d.size;
    put.scope = push_scope(repo);
    put.what = "uploading " + what;
    put.retry = false;  // a broken upload session is not resumed: start a new one
    auto done = execute(put, nullptr, until);
    if (done && (done->status == 201 || done->status == 204)) return true;
    if (done && !retryable_status(done->status)) return registry_http_error(put.what, *done);
    last = done ? registry_http_error(put.what, *done) : std::move(done).error();
    if (!done.ok() && !retryable_error(last)) return last;
    if (until - Clock::now() <= backoff) break;
    stats_.retries++;
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
  }
  return last;
}

Result<bool> RegistryClient::push_blob(const std::string& repo, const Descriptor& d, std::string_view bytes,
                                       std::optional<Deadline> deadline) const {
  if (static_cast<int64_t>(bytes.size()) != d.size) {
    return Error{EINVAL, "blob " + d.digest.str() + ": " + std::to_string(bytes.size()) + " bytes, the descriptor says " +
                             std::to_string(d.size)};
  }
  return push(repo, d, bytes, -1, deadline);
}

Result<bool> RegistryClient::push_blob_file(const std::string& repo, const Descriptor& d, const std::string& path,
                                            std::optional<Deadline> deadline) const {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("opening " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("stat " + path);
  if (st.st_size != d.size) {
    return Error{EINVAL, path + ": " + std::to_string(st.st_size) + " bytes, the descriptor of " + d.digest.str() +
                             " says " + std::to_string(d.size)};
  }
  return push(repo, d, {}, fd.get(), deadline);
}

}  // namespace ferry::oci
