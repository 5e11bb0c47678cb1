// CachedBlobSource: the uncompressed device of one blob of a Ferry image, served through a
// persistent blob cache on local disk (blob_cache_file.h, docs/image-format.md §6) that is
// filled on demand from the blob's stored chunks (a StoredChunkReader: a local blob file, a
// registry). The persistent sibling of ChunkedBlobSource: what it serves, it serves the same.
//
// What it promises:
// - Only verified bytes are served. A fetched chunk is decoded and its sha256 checked against
//   the chunk table before it is written to the cache or served; a chunk found present on disk
//   is read whole and its sha256 checked once per process (the first time it is used) before it
//   is trusted, so a cache damaged on disk (bit rot, a torn or reordered write at power loss, a
//   map of someone else's) is refetched, never served (stats().corrupt_refetched).
// - Missing chunks are fetched once however many readers wait (single flight: readers of a chunk
//   being fetched wait on that chunk's own condition variable, nothing else is held across a
//   fetch); the missing chunks of one read, or of fill(), go out as runs of adjacent chunks,
//   one read_stored_run() of at most merge_limit stored bytes each (a single chunk larger than
//   that is one run). A miss where the previous miss's fetch ended (a sequential reader: a tree
//   walk, a big file) also fetches the missing chunks after its range, 64 KiB of stored bytes
//   more at first, doubling with each such miss up to merge_limit, as the kernel's readahead
//   does; any other miss fetches its own range only, so random reads fetch what they read. A failed fetch or a damaged fetched chunk is Error{EIO} naming the blob and
//   the chunk for every reader waiting for it; the next read tries again. If the cache cannot be
//   written (disk full) the verified bytes are still served, and fetched again next time.
// - Present chunks survive the process: a successor opening the same work_dir fetches nothing
//   that is present. Several processes share one work_dir (see blob_cache_file.h for why).
// Cost: a read of a present chunk already verified by this process is an atomic load and one
// pread(2) into the caller's buffer per chunk it covers: no lock, no allocation, no copy (plus a
// relaxed add to a per-thread-striped hit counter). The first read of a present chunk reads and
// hashes the whole chunk (1 MiB: about 1 ms) into a per-thread buffer of the largest chunk it
// has checked (kept); a miss adds its fetch, its decode, and holds the decoded chunks of the
// read (of fill(): about merge_limit stored bytes' worth at a time) until they are served.
// Measured (bench/blob_cache_bench, the shared 2-CPU build machine at load 2-5, 1 MiB zstd
// chunks): a 4 KiB verified hit 0.6-1.5 us; the first read of a present chunk 0.7-1.5 ms; a cold
// chunk fetched from memory, decoded, hashed, checksummed and written 5-9 ms.
// Thread-safety: read_exact(), fill() and stats() from many threads. Nothing is logged here but a
// failed cache write (once per source) and a replaced map (blob_cache_file.cc).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/byte_source.h"
#include "common/result.h"
#include "erofs/chunk_table.h"
#include "storage/blob_cache_file.h"
#include "storage/prefetcher.h"
#include "storage/stored_chunk_reader.h"

namespace ferry::storage {

struct BlobCacheOptions {
  std::string work_dir;
  uint64_t merge_limit = 1 << 20;  // stored bytes of adjacent missing chunks fetched in one read_stored_run()
  // Held by a reader's fetch, so that a Prefetcher filling this cache waits (prefetcher.h);
  // null: nobody prefetches.
  std::shared_ptr<DemandGate> gate{};
};

struct BlobCacheStats {  // snapshot, for metrics
  uint64_t hits = 0, misses = 0;  // chunk lookups served from the cache / fetched
  uint64_t bytes_fetched = 0;     // stored bytes read through the StoredChunkReader
  uint64_t fetch_requests = 0;    // read_stored/read_stored_run calls
  uint64_t chunks_present = 0, chunks_total = 0;
  uint64_t corrupt_refetched = 0;  // chunks found damaged on disk and fetched again
};

class CachedBlobSource final : public ByteSource {
 public:
  // The source of device `device_id` of `table`, cached under options.work_dir and filled
  // through `stored`. EINVAL when the table has no such blob; the cache files' errors
  // (blob_cache_file.h: an unwritable work_dir names it).
  static Result<std::shared_ptr<CachedBlobSource>> open(std::shared_ptr<const erofs::ChunkTable> table,
                                                        uint16_t device_id,
                                                        std::shared_ptr<const StoredChunkReader> stored,
                                                        BlobCacheOptions options);

  struct Key {  // restricts construction to open()
    explicit Key() = default;
  };
  CachedBlobSource(Key, std::shared_ptr<const erofs::ChunkTable> table, uint16_t device_id,
                   std::shared_ptr<const StoredChunkReader> stored, BlobCacheOptions options,
                   std::unique_ptr<BlobCacheFile> file);
  ~CachedBlobSource() override;
  CachedBlobSource(const CachedBlobSource&) = delete;
  CachedBlobSource& operator=(const CachedBlobSource&) = delete;

  [[nodiscard]] uint64_t size() const override { return blob_.device_size; }
  Status read_exact(uint64_t offset, std::span<std::byte> out) const override;
  // "blob sha256:<hex> (cached in <work_dir>, from <where the stored bytes come from>)".
  [[nodiscard]] const std::string& name() const override { return name_; }
  [[nodiscard]] BlobCacheStats stats() const;
  // Fetches every missing chunk in [first, first+count) (chunk indexes within the blob), in
  // runs up to merge_limit; for prefetch. Goes on past a failed chunk and returns the first
  // error; EINVAL for a range past the blob's chunks.
  Status fill(uint64_t first, uint64_t count) const;
  // Readers waiting now for a fetch another reader is making (for tests and metrics).
  [[nodiscard]] uint64_t waiting() const { return waiting_.load(std::memory_order_relaxed); }
  [[nodiscard]] const BlobCacheFile& file() const { return *file_; }

 private:
  struct Flight;
  using Flights = std::vector<std::pair<uint64_t, std::shared_ptr<Flight>>>;

  // Serves [offset, offset + out.size()) from chunk `index` on, some chunk of it not verified.
  Status read_slow(uint64_t index, uint64_t offset, std::span<std::byte> out) const;
  // True when chunk `index` is present in the cache with its right bytes (checked once).
  bool check_present(uint64_t index) const;
  // Appends to `missing` (a miss of chunks up to `last`) the chunks a sequential reader will
  // want next (see above), and remembers where this fetch ends.
  void readahead(std::vector<uint64_t>& missing, uint64_t last) const;
  // Fetches the chunks of `missing` (ascending) or waits for the fetches others make of them;
  // returns each one's flight (its bytes, or its error). Chunks found verified meanwhile have none.
  Flights fetch(const std::vector<uint64_t>& missing) const;
  void fetch_run(std::span<const std::pair<uint64_t, std::shared_ptr<Flight>>> run) const;
  void finish(uint64_t index, Flight& flight, Status status) const;
  [[nodiscard]] Error chunk_error(uint64_t index, const std::string& what) const;
  void count_hit() const;

  std::shared_ptr<const erofs::ChunkTable> table_;
  erofs::BlobInfo blob_;
  std::span<const erofs::ChunkInfo> chunks_;
  std::shared_ptr<const StoredChunkReader> stored_;
  BlobCacheOptions options_;
  std::unique_ptr<BlobCacheFile> file_;
  std::string name_;
  std::string digest_hex_;
  // Per chunk: kUnknown, kVerified (present and checked by this process) or kDamaged.
  std::unique_ptr<std::atomic<uint8_t>[]> state_;  // NOLINT(*-avoid-c-arrays): one per chunk, fixed

  mutable std::mutex flights_mu_;  // only for lookups in flights_, never held across a fetch
  mutable std::unordered_map<uint64_t, std::shared_ptr<Flight>> flights_;
  mutable std::atomic<uint64_t> waiting_{0};
  mutable std::atomic<bool> write_warned_{false};

  struct alignas(64) Stripe {
    std::atomic<uint64_t> hits{0};
  };
  static constexpr unsigned kStripes = 16;
  mutable std::array<Stripe, kStripes> hits_{};
  mutable std::atomic<uint64_t> misses_{0}, bytes_fetched_{0}, fetch_requests_{0}, corrupt_refetched_{0};
  // Readahead (read_slow): the chunk after the last demand fetch, and how many stored bytes past
  // its range that fetch took. A heuristic shared by all readers: relaxed, races only cost it.
  mutable std::atomic<uint64_t> next_miss_{UINT64_MAX};
  mutable std::atomic<uint64_t> ahead_bytes_{0};
  mutable std::atomic<int64_t> present_{0};  // may dip below 0 for a chunk another daemon added
};

}  // namespace ferry::storage
