#include "storage/blob_chunks.h"

#include <algorithm>

#include "storage/chunk_codec.h"

namespace ferry::storage {

uint64_t chunk_at(std::span<const erofs::ChunkInfo> chunks, uint64_t offset) {
  // The last chunk starting at or before the offset, if its padded range reaches it.
  auto it = std::upper_bound(chunks.begin(), chunks.end(), offset,
                             [](uint64_t off, const erofs::ChunkInfo& c) { return off < c.device_offset; });
  if (it == chunks.begin() || offset - (it - 1)->device_offset >= padded_chunk_size((it - 1)->size)) return kNoChunk;
  return static_cast<uint64_t>(it - 1 - chunks.begin());
}

Error chunk_error(const std::string& digest_hex, uint64_t table_index, const erofs::ChunkInfo& c,
                  const std::string& what) {
  return Error{EIO, "blob sha256:" + digest_hex + " chunk " + std::to_string(table_index) + " (device offset " +
                        std::to_string(c.device_offset) + ", " + std::to_string(c.size) + " bytes, stored " +
                        std::string(compression_name(c.compression)) + " at blob offset " +
                        std::to_string(c.blob_offset) + ", " + std::to_string(c.stored_size) + " bytes): " + what};
}

Error no_chunk_error(const std::string& name, uint64_t offset) {
  return Error{EIO, name + ": no chunk holds device offset " + std::to_string(offset)};
}

Error past_end_error(const std::string& name, uint64_t offset, uint64_t n, uint64_t device_size) {
  return Error{EIO, "read of " + std::to_string(n) + " bytes at device offset " + std::to_string(offset) +
                        " is past the end of " + name + " (" + std::to_string(device_size) + " bytes)"};
}

}  // namespace ferry::storage
