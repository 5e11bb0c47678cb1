// RegistryChunkReader: the stored bytes of one blob's chunks, fetched through a RemoteBlobFetcher
// (a Range GET of the blob in its registry) when ChunkedBlobSource asks for them.
//
// It fetches exactly what is asked: one chunk (read_stored) or a run of chunks that lie back to
// back in the blob, in one request (read_stored_run). Nothing is trusted or kept here: the
// ChunkedBlobSource in front decodes and verifies every chunk, a blob cache (when configured)
// keeps verified chunks. Each fetch has the fetcher's deadline from the moment it starts.
//
// Counters (stats()) are per reader (one per opened blob device), relaxed atomics: requests,
// bytes, failures, latency (total, max, histogram). Readers made by open() are listed by
// live_registry_readers() for the daemon's metrics.
// Thread-safety: all methods from many threads. Errors are the fetcher's (naming registry,
// repository and blob) with the chunk index; never a credential.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "storage/remote_blob_fetcher.h"
#include "storage/stored_chunk_reader.h"

namespace ferry::storage {

struct RemoteFetchStats {
  // Latency buckets of successful requests: upper bounds in milliseconds, the last counts the rest.
  static constexpr std::array<uint64_t, 9> kBucketsMs = {1, 5, 10, 25, 50, 100, 250, 1000, 5000};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> latency_us_total{0};  // of successful requests
  std::atomic<uint64_t> latency_us_max{0};
  std::array<std::atomic<uint64_t>, kBucketsMs.size() + 1> latency{};
};

class RegistryChunkReader final : public StoredChunkReader {
 public:
  // `digest`: "sha256:<hex>" of the blob; `blob_size`: its size by the chunk table (a chunk
  // beyond it is refused without a request).
  RegistryChunkReader(std::shared_ptr<const RemoteBlobFetcher> fetcher, std::string digest, uint64_t blob_size);
  // The same, listed by live_registry_readers() while it lives.
  static std::shared_ptr<const RegistryChunkReader> open(std::shared_ptr<const RemoteBlobFetcher> fetcher,
                                                         std::string digest, uint64_t blob_size);

  Status read_stored(uint64_t index, const erofs::ChunkInfo& chunk, std::span<std::byte> out) const override;
  // One request for the whole run; EINVAL when the chunks are not back to back in the blob or
  // out is not the sum of their stored sizes.
  Status read_stored_run(uint64_t first_index, std::span<const erofs::ChunkInfo> chunks,
                         std::span<std::byte> out) const override;
  // "registry HOST, repository REPO, blob sha256:<hex>".
  [[nodiscard]] const std::string& name() const override { return name_; }
  [[nodiscard]] const std::string& digest() const { return digest_; }
  [[nodiscard]] const RemoteFetchStats& stats() const { return stats_; }

 private:
  // Chunks first..first+count-1 (named in an error only: no string is built on success).
  Status fetch(uint64_t first, size_t count, uint64_t offset, std::span<std::byte> out) const;

  std::shared_ptr<const RemoteBlobFetcher> fetcher_;
  std::string digest_;
  uint64_t blob_size_;
  std::string name_;
  mutable RemoteFetchStats stats_;
};

// Every reader made by open() that still lives (for metrics; takes a lock, not for the hot path).
std::vector<std::shared_ptr<const RegistryChunkReader>> live_registry_readers();

}  // namespace ferry::storage
