// CountingReader: a StoredChunkReader decorator over a blob file (BlobFileReader) that counts
// what a source asks of it (requests, runs, each chunk's fetches) and offers two fault seams: a
// switch that makes every fetch fail with EIO, and a hook run inside each fetch before the bytes
// are read (to hold a fetch in flight until a test's condition holds). For tests of
// ChunkedBlobSource and CachedBlobSource; header-only (link ferry_storage).
//
// Thread-safety: read_stored()/read_stored_run() and the counters from many threads; set the
// hook before the reader is used.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "storage/stored_chunk_reader.h"

namespace ferry::testkit {

class CountingReader final : public storage::StoredChunkReader {
 public:
  explicit CountingReader(std::shared_ptr<const ByteSource> file) : inner_(std::move(file)) {}

  Status read_stored(uint64_t index, const erofs::ChunkInfo& chunk, std::span<std::byte> out) const override {
    fetches.fetch_add(1);
    count(index, 1);
    return fetch([&] { return inner_.read_stored(index, chunk, out); });
  }
  Status read_stored_run(uint64_t first_index, std::span<const erofs::ChunkInfo> chunks,
                         std::span<std::byte> out) const override {
    fetches.fetch_add(1);
    runs.fetch_add(1);
    count(first_index, chunks.size());
    return fetch([&] { return inner_.read_stored_run(first_index, chunks, out); });
  }
  [[nodiscard]] const std::string& name() const override { return inner_.name(); }

  // How often chunk `index` (of the chunk table) was fetched, and all chunk fetches.
  [[nodiscard]] uint64_t fetched(uint64_t index) const {
    std::lock_guard lock(mu_);
    auto it = per_chunk_.find(index);
    return it == per_chunk_.end() ? 0 : it->second;
  }
  [[nodiscard]] uint64_t chunks_fetched() const {
    std::lock_guard lock(mu_);
    uint64_t n = 0;
    for (const auto& [i, k] : per_chunk_) n += k;
    return n;
  }
  void reset() {
    std::lock_guard lock(mu_);
    per_chunk_.clear();
    fetches = 0;
    runs = 0;
  }

  mutable std::atomic<uint64_t> fetches{0};  // read_stored + read_stored_run calls
  mutable std::atomic<uint64_t> runs{0};     // read_stored_run calls
  std::atomic<bool> fail{false};             // every fetch answers EIO while set
  std::function<void()> during_fetch;        // run inside each fetch, before the bytes are read

 private:
  void count(uint64_t first, uint64_t n) const {
    std::lock_guard lock(mu_);
    for (uint64_t i = first; i < first + n; ++i) ++per_chunk_[i];
  }
  template <typename F>
  Status fetch(F&& read) const {
    if (during_fetch) during_fetch();
    if (fail.load()) return Error{EIO, inner_.name() + ": injected fetch failure"};
    return read();
  }

  storage::BlobFileReader inner_;
  mutable std::mutex mu_;
  mutable std::map<uint64_t, uint64_t> per_chunk_;
};

}  // namespace ferry::testkit
