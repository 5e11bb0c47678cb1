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
  // Reads the stored bytes of the consecutive chunks `first_index`, first_index + 1, ... (one
  // per record of `chunks`), which lie back to back in the blob file, into `out` (the sum of
  // their stored sizes). A reader that can fetch them at once (one Range request) overrides
  // this; the default reads them one by one.
  virtual Status read_stored_run(uint64_t first_index, std::span<const erofs::ChunkInfo> chunks,
                                 std::span<std::byte> out) const {
    size_t at = 0;
    for (size_t i = 0; i < chunks.size(); ++i) {
      const uint32_t n = chunks[i].stored_size;
      if (out.size() - at < n) return Error{EINVAL, name() + ": read_stored_run: buffer smaller than the chunks"};
      Status st = read_stored(first_index + i, chunks[i], out.subspan(at, n));
      if (!st.ok()) return st;
      at += n;
    }
    return ok_status();
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
    uint64_t total = 0;
    for (const auto& c : chunks) total += c.stored_size;
    if (out.size() != total) return Error{EINVAL, name() + ": read_stored_run: buffer is not the chunks' size"};
    return file_->read_exact(chunks.front().blob_offset, out);
  }
  [[nodiscard]] const std::string& name() const override { return file_->name(); }

 private:
  std::shared_ptr<const ByteSource> file_;
};

}  // namespace ferry::storage
