// StoredChunkReader: where the stored (possibly compressed) bytes of a blob's chunks come from.
//
// This is the seam between fetching and serving. ChunkedBlobSource (chunked_blob_source.h) does
// everything that is the same for every backend: finding the chunk of a device offset, decoding,
// verifying the sha256, caching decoded chunks. A reader only delivers stored bytes: today from
// a local blob file (BlobFileReader, localfs `dir` / `blob_file`); next from a registry with
// `Range` requests (issue 16), which gets the chunk index so that it can merge neighbours and
// fetch each chunk once however many readers wait. The persistent blob cache
// (cached_blob_source.h) is the other user: it fetches missing chunks through this interface and
// keeps them decoded and verified on disk. What comes through here is never trusted.
//
// Thread-safety: read_stored() and read_stored_run() are called from many threads at once.
// Errors name the source.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/byte_source.h"
#include "common/result.h"
#include "erofs/chunk_table.h"

namespace ferry::storage {

class StoredChunkReader {
 public:
  virtual ~StoredChunkReader() = default;
  // Reads the stored bytes of chunk `index` (its record's index in the image's chunk table):
  // exactly `chunk.stored_size` bytes at `chunk.blob_offset` of the blob file, into `out`
  // (out.size() == chunk.stored_size).
  virtual Status read_stored(uint64_t index, const erofs::ChunkInfo& chunk,
                             std::span<std::byte> out) const = 0;
  // Reads the stored bytes of consecutive chunks, `chunks` (records first_index, first_index + 1,
  // ...), whose stored bytes are contiguous in the blob file, into `out` (out.size() = the sum of
  // their stored_size). The blob cache fetches runs of adjacent missing chunks with it: a reader
  // that pays per request (a registry's Range GET) overrides it with one request. The default
  // reads chunk by chunk.
  virtual Status read_stored_run(uint64_t first_index, std::span<const erofs::ChunkInfo> chunks,
                                 std::span<std::byte> out) const {
    for (size_t k = 0; k < chunks.size(); ++k) {
      FERRY_TRY(read_stored(first_index + k, chunks[k], out.first(chunks[k].stored_size)));
      out = out.subspan(chunks[k].stored_size);
    }
    return {};
  }
  [[nodiscard]] virtual const std::string& name() const = 0;
};

// The stored bytes are a local blob file (any ByteSource: a LocalFile, or memory in tests).
class BlobFileReader final : public StoredChunkReader {
 public:
  explicit BlobFileReader(std::shared_ptr<const ByteSource> file) : file_(std::move(file)) {}
  Status read_stored(uint64_t /*index*/, const erofs::ChunkInfo& chunk,
                     std::span<std::byte> out) const override {
    return file_->read_exact(chunk.blob_offset, out);
  }
  // One read: the run's stored bytes are contiguous in the file.
  Status read_stored_run(uint64_t /*first_index*/, std::span<const erofs::ChunkInfo> chunks,
                         std::span<std::byte> out) const override {
    if (chunks.empty()) return {};
    return file_->read_exact(chunks.front().blob_offset, out);
  }
  [[nodiscard]] const std::string& name() const override { return file_->name(); }

 private:
  std::shared_ptr<const ByteSource> file_;
};

}  // namespace ferry::storage
