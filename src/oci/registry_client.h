// RegistryClient: the OCI distribution API of one registry host, over HttpTransport.
//
// What it does for every call: builds the URL (https, or http with plain_http), authenticates
// (anonymous; Basic; a static registry token; or Bearer tokens from the WWW-Authenticate realm
// flow, cached per repository scope, refreshed before expiry and once more on a 401), follows
// redirects itself (at most 5; the Authorization header only goes to the registry's own
// origin), retries connection errors, 429 and 5xx with exponential backoff (retry_limit times),
// and bounds the whole call, retries and token fetch included, by one deadline: the caller's,
// or now + timeout (metadata calls) / transfer_timeout (whole-blob transfers).
//
// Everything fetched is verified: a manifest by digest and a whole blob against their digest
// (EBADMSG on a mismatch); a Range read must return exactly the bytes asked for.
//
// Errors name the registry, the repository and the digest or reference:
//   "registry 127.0.0.1:5000, repository ns/app, blob sha256:...: HTTP 404 (BLOB_UNKNOWN: ...)"
// codes: ENOENT (404), EACCES (401/403 after auth), ETIMEDOUT (deadline), EBADMSG (digest),
// ECONNREFUSED/ECONNRESET/EHOSTUNREACH/EPROTO (transport), EIO (5xx after retries), EPROTO
// (an answer that breaks the protocol). Credentials and tokens are never logged nor put in a
// message; log lines (debug) carry method, path and status only.
//
// Thread safety: every method may be called concurrently (a lazy fetcher's threads share one
// client); connections are pooled.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "oci/credentials.h"
#include "oci/descriptor.h"
#include "oci/http_transport.h"
#include "oci/token_source.h"

namespace ferry::oci {

struct RegistryOptions {
  std::string host;         // "HOST[:PORT]"
  bool plain_http = false;  // http:// instead of https://
  TlsOptions tls;
  Credentials credentials;
  std::chrono::milliseconds timeout{30'000};               // deadline of a metadata call
  std::chrono::milliseconds transfer_timeout{3'600'000};   // deadline of a whole-blob GET/push
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds stall_timeout{30'000};         // no byte for this long: retry
  int retry_limit = 3;                                     // retries after the first attempt
  std::chrono::milliseconds backoff{100};                  // first retry delay, doubled, <= 5 s
};

struct FetchedManifest {
  std::string bytes;
  std::string media_type;  // Content-Type as the registry sent it (may be refined by parse_manifest)
  Digest digest;           // sha256 of bytes (checked against the reference when it is a digest)
};

// Counters for metrics and tests (all requests, including token requests and retries).
struct RegistryStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> token_fetches{0};
  std::atomic<uint64_t> bytes_received{0};
};

class RegistryClient {
 public:
  // EINVAL for an invalid host; an unreadable CA file is an error naming it.
  static Result<std::unique_ptr<RegistryClient>> create(RegistryOptions options);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  [[nodiscard]] const std::string& host() const { return options_.host; }
  [[nodiscard]] const RegistryStats& stats() const { return stats_; }

  // --- manifests (reference: a tag or "sha256:...") -------------------------------------------
  Result<FetchedManifest> get_manifest(const std::string& repo, const std::string& reference,
                                       std::optional<Deadline> deadline = {}) const;
  // A descriptor (media type, digest from Docker-Content-Digest, size) without the body.
  Result<Descriptor> head_manifest(const std::string& repo, const std::string& reference,
                                   std::optional<Deadline> deadline = {}) const;
  // PUT under a tag (or its digest); returns the digest of `bytes`.
  Result<Digest> put_manifest(const std::string& repo, const std::string& reference, std::string_view media_type,
                              std::string_view bytes, std::optional<Deadline> deadline = {}) const;

  // --- blobs ------------------------------------------------------------------------------------
  // The blob's size if the registry has it, nullopt if not (404).
  Result<std::optional<int64_t>> head_blob(const std::string& repo, const Digest& digest,
                                           std::optional<Deadline> deadline = {}) const;
  // The whole blob in memory, verified (digest, and d.size when > 0); EMSGSIZE over max_size.
  Result<std::string> get_blob(const std::string& repo, const Descriptor& d, size_t max_size,
                               std::optional<Deadline> deadline = {}) const;
  // The whole blob into `path` (written beside it and renamed when verified).
  Status get_blob_to_file(const std::string& repo, const Descriptor& d, const std::string& path,
                          std::optional<Deadline> deadline = {}) const;
  // Exactly out.size() bytes from `offset` of the blob into `out` (one Range GET; a registry
  // that ignores Range is handled by skipping). ERANGE when the blob ends before offset+size.
  // Not verified here: a lazy fetcher checks each chunk against the chunk table.
  Status read_blob_range(const std::string& repo, const Digest& digest, uint64_t offset, std::span<std::byte> out,
                         std::optional<Deadline> deadline = {}) const;

  // Monolithic push (POST an upload, PUT ?digest=) unless HEAD says the registry has it.
  // Returns true when uploaded, false when skipped. The registry verifies the digest.
  Result<bool> push_blob(const std::string& repo, const Descriptor& d, std::string_view bytes,
                         std::optional<Deadline> deadline = {}) const;
  Result<bool> push_blob_file(const std::string& repo, const Descriptor& d, const std::string& path,
                              std::optional<Deadline> deadline = {}) const;

 private:
  struct Call;  // one logical request: URL, method, scope, what to say in errors
  explicit RegistryClient(RegistryOptions options, std::unique_ptr<HttpTransport> transport);

  [[nodiscard]] std::string base_url() const;
  [[nodiscard]] Deadline deadline_or(std::optional<Deadline> d, std::chrono::milliseconds dflt) const;
  // Auth, redirects and retries around one exchange.
  Result<HttpResponse> execute(const Call& call, BodySink* sink, Deadline deadline) const;
  Result<HttpResponse> execute_once_authed(const Call& call, BodySink* sink, Deadline deadline) const;
  Result<HttpResponse> follow(const Call& call, const std::optional<std::string>& authorization, BodySink* sink,
                              Deadline deadline) const;
  // The Authorization header for `scope` (nullopt: anonymous); fetches a Bearer token first
  // when the registry is known to want one and the cached one is missing or due.
  Result<std::optional<std::string>> authorization_for(const std::string& scope, Deadline deadline) const;
  // After a 401 to a request sent with `sent` (the Authorization header, if any).
  Status authenticate(const HttpResponse& challenge_response, const std::optional<std::string>& sent,
                      const std::string& scope, Deadline deadline) const;
  Status refresh_token(const AuthChallenge& challenge, const std::string& scope, Deadline deadline) const;
  Result<bool> push(const std::string& repo, const Descriptor& d, std::string_view bytes, int fd,
                    std::optional<Deadline> deadline) const;

  RegistryOptions options_;
  std::unique_ptr<HttpTransport> transport_;
  mutable TokenCache tokens_;
  mutable std::atomic<bool> basic_required_{false};
  mutable std::mutex challenge_mu_;
  mutable std::optional<AuthChallenge> bearer_challenge_;  // the last Bearer challenge seen
  mutable std::mutex token_fetch_mu_;
  mutable RegistryStats stats_;
};

// Registry errors: "registry H, repository R, <what>: HTTP 404 (CODE: message)", with the
// distribution spec's error body summarised (bounded, control characters dropped).
Error registry_http_error(const std::string& context, const HttpResponse& response);

}  // namespace ferry::oci
