// What the sources of a blob's device (ChunkedBlobSource, CachedBlobSource) share about its
// chunks: where a device offset falls and how an error names a chunk. Pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/result.h"
#include "erofs/chunk_table.h"

namespace ferry::storage {

// A chunk's bytes padded to the 4 KiB block (the padding reads as zeros).
[[nodiscard]] inline uint64_t padded_chunk_size(uint32_t size) {
  return (uint64_t{size} + erofs::kFerryBlockSize - 1) & ~uint64_t{erofs::kFerryBlockSize - 1};
}

inline constexpr uint64_t kNoChunk = ~uint64_t{0};

// The index in `chunks` (sorted, as the chunk table reader guarantees) of the chunk whose
// block-padded range holds `offset`, or kNoChunk. O(log n), no allocation.
[[nodiscard]] uint64_t chunk_at(std::span<const erofs::ChunkInfo> chunks, uint64_t offset);

// Error{EIO} "blob sha256:<hex> chunk <table_index> (device offset ..., stored ...): <what>".
Error chunk_error(const std::string& digest_hex, uint64_t table_index, const erofs::ChunkInfo& chunk,
                  const std::string& what);
// Error{EIO} "<name>: no chunk holds device offset <offset>" (a gap a valid table never has).
Error no_chunk_error(const std::string& name, uint64_t offset);
// Error{EIO} for a read of `n` bytes at `offset` past the end of the device `name`.
Error past_end_error(const std::string& name, uint64_t offset, uint64_t n, uint64_t device_size);

}  // namespace ferry::storage
