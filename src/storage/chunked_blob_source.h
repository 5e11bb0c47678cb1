// ChunkedBlobSource: the uncompressed device of one blob of a Ferry image, served from the
// blob's stored chunks through the image's chunk table (docs/image-format.md §4).
//
// A read at device offset X finds the chunk record (binary search), gets its stored bytes from
// a StoredChunkReader, decodes them (zstd, lz4, or stored as is) and checks their sha256 against
// the record before a byte is served; the block padding after a chunk reads as zeros. A failed
// fetch, a failed decompression or a digest mismatch is Error{EIO} naming the blob (digest) and
// the chunk (index, device and blob offsets): never wrong bytes. Nothing is logged here; the
// caller (ImageFs) logs each failed request once.
//
// Decoded-chunk cache: a read that covers a whole chunk is decoded straight into the caller's
// buffer; a read of part of a chunk (the kernel reads big files 4 KiB..1 MiB at a time) goes
// through a small cache of recently decoded chunks, so that sequential reads of a chunk decode
// it once. Cost: cache_slots() buffers of the blob's largest chunk per source, each allocated
// when first filled (default: as many table-size chunks as fit in 4 MiB, 2..8 slots; at most
// 4 MiB per blob at 1 MiB chunks, 128 MiB at the largest, 64 MiB, chunks), plus, per thread
// that decodes, one scratch buffer of the largest stored chunk it has read. Replacement is
// CLOCK (a hit sets the slot's flag only if unset). Time: a hit is a scan of the slots' keys,
// one shared lock and a memcpy; a miss is the chunk's fetch, its decompression and its sha256
// (bench/chunk_source_bench on the busy, shared 2-CPU build machine: a 1 MiB chunk 1.8-3.7 ms
// with zstd, 1.1-2.8 ms with lz4, up to 1.6 ms of either the sha256; a 4 KiB hit 0.3-0.8 us).
// Without the cache each of the eight 128 KiB reads of a 1 MiB chunk would pay the whole miss.
//
// Thread-safety: read_exact() from many threads. There is no lock over the whole cache: each
// slot has its own reader-writer lock, a hit takes it shared (parallel hits copy in parallel), a
// miss takes one slot exclusively while it decodes, so readers of that chunk wait for the one
// decode instead of repeating it. A thread holds at most one slot lock at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>

#include "common/byte_source.h"
#include "common/result.h"
#include "erofs/chunk_table.h"
#include "storage/stored_chunk_reader.h"

namespace ferry::storage {

class ChunkedBlobSource final : public ByteSource {
 public:
  struct Options {
    unsigned cache_slots = 0;  // 0: the default for the chunk size (see above)
  };

  // The source of device `device_id` of `table`, reading stored bytes through `stored`. EINVAL
  // when the table has no such blob.
  static Result<std::shared_ptr<ChunkedBlobSource>> open(std::shared_ptr<const erofs::ChunkTable> table,
                                                         uint16_t device_id,
                                                         std::shared_ptr<const StoredChunkReader> stored,
                                                         Options options);
  static Result<std::shared_ptr<ChunkedBlobSource>> open(std::shared_ptr<const erofs::ChunkTable> table,
                                                         uint16_t device_id,
                                                         std::shared_ptr<const StoredChunkReader> stored) {
    return open(std::move(table), device_id, std::move(stored), Options{});
  }

  struct Key {  // restricts construction to open()
    explicit Key() = default;
  };
  ChunkedBlobSource(Key, std::shared_ptr<const erofs::ChunkTable> table, uint16_t device_id,
                    std::shared_ptr<const StoredChunkReader> stored, unsigned slots);
  ~ChunkedBlobSource() override;
  ChunkedBlobSource(const ChunkedBlobSource&) = delete;
  ChunkedBlobSource& operator=(const ChunkedBlobSource&) = delete;

  [[nodiscard]] uint64_t size() const override { return blob_.device_size; }
  Status read_exact(uint64_t offset, std::span<std::byte> out) const override;
  // "blob sha256:<hex> (<where the stored bytes come from>)".
  [[nodiscard]] const std::string& name() const override { return name_; }
  [[nodiscard]] unsigned cache_slots() const { return slot_count_; }

 private:
  struct Slot;

  // Decodes chunk `index` (within this blob) into out (exactly its size) and verifies it.
  Status decode(uint64_t index, std::span<std::byte> out) const;
  // Copies [within, within + out.size()) of chunk `index`'s data through the cache.
  Status copy_cached(uint64_t index, uint64_t within, std::span<std::byte> out) const;
  Slot& victim() const;
  [[nodiscard]] Error chunk_error(uint64_t index, const std::string& what) const;

  std::shared_ptr<const erofs::ChunkTable> table_;
  erofs::BlobInfo blob_;
  std::span<const erofs::ChunkInfo> chunks_;
  std::shared_ptr<const StoredChunkReader> stored_;
  std::string name_;
  std::string digest_hex_;
  unsigned slot_count_;
  uint32_t max_chunk_ = 0;         // the largest chunk of this blob: the size of a slot's buffer
  std::unique_ptr<Slot[]> slots_;  // NOLINT(*-avoid-c-arrays): fixed count, never resized
  mutable std::atomic<unsigned> hand_{0};
};

// The ByteSource serving device `device_id` of a Ferry image whose blob file is `blob_file`:
// the file itself when the blob is uncompressed (it IS the device: raw pread, no copy, as
// mkfs.erofs images are read), else a ChunkedBlobSource over it. Refuses a file whose size is
// not the blob's (truncated, or another blob) and a device the table does not describe.
Result<std::shared_ptr<const ByteSource>> open_blob_device(std::shared_ptr<const erofs::ChunkTable> table,
                                                           uint16_t device_id,
                                                           std::shared_ptr<const ByteSource> blob_file);

}  // namespace ferry::storage
