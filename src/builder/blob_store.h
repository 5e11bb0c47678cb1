// BlobStore: cuts file data into chunks and stores each unique chunk once, compressed, in the
// blob of the layer that first brought it (docs/image-format.md §4). It hands out the ChunkRef
// a chunk index records and, at the end, the chunk table and the device list of the bootstrap.
//
// Blobs are written to temporary files in the blob directory and get their names
// (<sha256 hex>) only in commit(); destroying an uncommitted store removes them. The caller's
// thread hashes and deduplicates (a chunk's device offset is known at once, so add() answers
// immediately); one worker thread of the store's own compresses and writes the chunks in order,
// so the two stages overlap. The public methods are for one caller thread only.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "builder/output_file.h"
#include "builder/tree.h"
#include "erofs/chunk_table.h"
#include "storage/chunk_codec.h"

namespace ferry::builder {

struct BlobStats {
  uint64_t chunk_refs = 0;          // chunks referenced by files (holes excluded)
  uint64_t chunks_stored = 0;       // unique chunks written
  uint64_t holes = 0;               // all-zero chunks, stored nowhere
  uint64_t bytes_referenced = 0;    // uncompressed bytes of all referenced chunks
  uint64_t bytes_stored = 0;        // uncompressed bytes of stored chunks
  uint64_t bytes_deduplicated = 0;  // referenced again instead of stored
};

struct BlobResult {
  erofs::BlobInfo info;
  std::string path;    // DIR/<hex>, valid after commit()
  uint32_t layer = 0;  // index of the layer that made it
};

class BlobStore {
 public:
  BlobStore(std::string dir, erofs::Compression compressor, uint32_t chunk_size);
  ~BlobStore();
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  [[nodiscard]] uint32_t chunk_size() const { return chunk_size_; }

  // Subsequent chunks that are new go to this layer's blob (made on its first new chunk).
  Status begin_layer(uint32_t layer);
  // The reference of one chunk (data.size() <= chunk size; shorter only at a file's end).
  Result<ChunkRef> add(std::span<const std::byte> data);
  // Finishes the current layer's blob, if it has one.
  Status end_layer();

  // The chunk table (device ids in layer order) once every layer ended.
  [[nodiscard]] erofs::ChunkTable table() const;
  [[nodiscard]] const std::vector<BlobResult>& blobs() const { return blobs_; }
  [[nodiscard]] const BlobStats& stats() const { return stats_; }

  // Renames every blob to DIR/<hex>.
  Status commit();

 private:
  struct DigestHash {
    size_t operator()(const erofs::Digest& d) const noexcept;
  };
  struct OpenBlob {
    OutputFile file;
    storage::Sha256 hash;
    std::vector<erofs::ChunkInfo> chunks;  // appended by the worker, read after drain()
  };
  struct Job {
    erofs::ChunkInfo info;  // device offset, size, digest; the worker fills in the rest
    std::vector<std::byte> data;
  };

  void worker_loop();
  // Compresses and appends one chunk to the open blob (worker thread).
  Status store(Job& job);
  // Waits until the worker has written every queued chunk; its first error, if any.
  Status drain();

  std::string dir_;
  erofs::Compression compressor_;
  uint32_t chunk_size_;
  uint32_t layer_ = 0;
  std::optional<OpenBlob> open_;
  uint64_t open_device_size_ = 0;

  // Shared with the worker, under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::vector<std::vector<std::byte>> spare_;  // recycled chunk buffers
  size_t busy_ = 0;                            // jobs taken but not finished
  bool stop_ = false;
  Status worker_status_;
  // The worker's own.
  storage::ChunkCompressor codec_;
  std::vector<std::byte> scratch_;
  std::thread worker_;
  std::vector<BlobResult> blobs_;
  std::vector<OutputFile> finished_;  // parallel to blobs_ until commit()
  std::vector<std::vector<erofs::ChunkInfo>> chunk_lists_;
  std::unordered_map<erofs::Digest, ChunkRef, DigestHash> known_;
  BlobStats stats_;
};

}  // namespace ferry::builder
