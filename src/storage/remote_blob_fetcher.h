// RemoteBlobFetcher: where a lazily fetched blob's bytes come from (a registry, issue 16).
//
// Storage knows nothing of HTTP: it asks for a byte range of a blob, by digest, by a deadline.
// The registry implementation lives in src/remote (a module ferryd loads on its first fetch, so
// that ferryd itself links no libcurl).
//
// Thread-safety: fetch() is called from many threads at once. Errors: ETIMEDOUT when the
// deadline passed, ENOENT for a blob the registry does not have, EIO/ECONN*/EPROTO for the
// network; messages name the registry, the repository and the blob, never a credential.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "common/result.h"

namespace ferry::storage {

class RemoteBlobFetcher {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~RemoteBlobFetcher() = default;

  // Exactly out.size() bytes of blob `digest` ("sha256:<hex>") from `offset`, in one request
  // (retries included) that ends by `deadline`. The bytes are not verified here.
  virtual Status fetch(const std::string& digest, uint64_t offset, std::span<std::byte> out,
                       Clock::time_point deadline) const = 0;
  // How long one fetch may take (the configured `timeout`): the reader's deadline is now + this.
  [[nodiscard]] virtual std::chrono::milliseconds timeout() const = 0;
  // "registry HOST, repository REPO": what errors and names start with.
  [[nodiscard]] virtual const std::string& name() const = 0;
};

}  // namespace ferry::storage
