// BlobCacheFile: the two files of one blob in a blob cache's work_dir (docs/image-format.md §6):
// `<blobhex>.blob.data`, the blob's uncompressed device with each cached chunk at its device
// offset (sparse where absent: a fully cached blob is byte for byte its `--compressor none`
// device), and `<blobhex>.blob.chunk_map.v1`, the chunk map (chunk_map.h) saying which chunks
// are there.
//
// It only moves bytes: CachedBlobSource (cached_blob_source.h) decides what is trusted. The
// promises that make a shared, crash-safe cache are kept here:
// - write_chunk() writes a chunk's data, then its record: a record is never on disk before the
//   data it describes has been handed to the kernel, so a process killed at any point leaves a
//   chunk present with its bytes, or missing. (Power loss may reorder the two in the page
//   cache's writeback: the reader verifies every chunk once per process, so a record whose
//   bytes did not reach the disk is found and the chunk fetched again.)
// - Several processes (two daemons, a successor next to its predecessor) share the files: they
//   write only verified chunks, so the same offset always gets the same bytes, and a record is
//   one 8-byte pwrite at its fixed offset (never torn between writers, never crossing a page).
//   No lock is needed and no writer can make another's data wrong.
// - A map that is damaged, truncated, of another version or about another blob is replaced by
//   an empty one, made beside it and renamed over it (a daemon that has the old one open keeps
//   a consistent file; a map is never truncated in place), with a warning naming the file.
//   A missing map is created the same way and linked into place, so that of two daemons
//   creating it at once one wins and both use its file.
// Files are created 0600, a missing work_dir 0700; an unwritable work_dir or a file that
// cannot be opened is an error naming it. Thread-safety: every method, from many threads
// (pread/pwrite at fixed offsets). Errors are EIO/errno values naming the file.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "erofs/chunk_table.h"
#include "storage/chunk_map.h"

namespace ferry::storage {

class BlobCacheFile {
 public:
  // Opens (creating what is missing) the cache files of `blob` under `work_dir`. `chunk_size` is
  // the image's chunk size (recorded in the map: a map of another chunking is replaced).
  static Result<std::unique_ptr<BlobCacheFile>> open(const std::string& work_dir, const erofs::BlobInfo& blob,
                                                     uint32_t chunk_size);

  struct Key {  // restricts construction to open()
    explicit Key() = default;
  };
  BlobCacheFile(Key, std::string data_path, std::string map_path, UniqueFd data, UniqueFd map,
                uint32_t chunk_count);
  BlobCacheFile(const BlobCacheFile&) = delete;
  BlobCacheFile& operator=(const BlobCacheFile&) = delete;
  ~BlobCacheFile() = default;

  // Chunk `index`'s record as it is on disk now (another process may have written it since).
  [[nodiscard]] Result<ChunkRecord> record(uint64_t index) const;
  // Exactly out.size() bytes of the data file at `offset`.
  Status read(uint64_t offset, std::span<std::byte> out) const;
  // The chunk's bytes at its device offset, then its record (present, their crc32c).
  Status write_chunk(uint64_t index, uint64_t device_offset, std::span<const std::byte> data) const;
  // The two halves of write_chunk(), for tests that stop a process between them.
  Status write_data(uint64_t device_offset, std::span<const std::byte> data) const;
  Status write_record(uint64_t index, const ChunkRecord& record) const;

  // Chunks whose records said present when the map was opened.
  [[nodiscard]] uint64_t present_at_open() const { return present_at_open_; }
  // True when open() found the map unusable and replaced it with an empty one.
  [[nodiscard]] bool map_rebuilt() const { return map_rebuilt_; }
  [[nodiscard]] const std::string& data_path() const { return data_path_; }
  [[nodiscard]] const std::string& map_path() const { return map_path_; }

 private:
  std::string data_path_;
  std::string map_path_;
  UniqueFd data_;
  UniqueFd map_;
  uint32_t chunk_count_;
  uint64_t present_at_open_ = 0;
  bool map_rebuilt_ = false;
};

}  // namespace ferry::storage
