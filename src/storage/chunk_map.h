// The chunk map of a blob cache (docs/image-format.md §6): which chunks of one blob's cached
// device are present, as the bytes of `<blobhex>.blob.chunk_map.v1`. Pure encoding and checking,
// no files (blob_cache_file.h does the I/O), so that the parser of these untrusted bytes can be
// fuzzed (fuzz/chunk_map_fuzz.cc).
//
// A map is a 4 KiB header (magic, version, sizes, the blob's digest, its chunk count and the
// image's chunk size, a CRC-32C of the header) and one 8-byte record per chunk at a fixed offset
// (present flag, CRC-32C of the chunk's uncompressed bytes). The version is in the file name too:
// a daemon never opens a map of another version, and one it finds damaged or naming another
// blob it replaces. check_chunk_map() never reads out of range and never crashes on any input.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "erofs/chunk_table.h"

namespace ferry::storage {

inline constexpr char kChunkMapMagic[8] = {'F', 'E', 'R', 'R', 'Y', 'C', 'M', '\0'};
inline constexpr uint32_t kChunkMapVersion = 1;
inline constexpr uint32_t kChunkMapHeaderSize = 4096;  // records start page-aligned
inline constexpr uint32_t kChunkMapRecordSize = 8;     // never crosses a sector or a page
inline constexpr uint32_t kChunkPresent = 0x31504843;  // "CHP1": anything else is missing

// What a map must be about: the blob of the cache, and the chunking the records index.
struct ChunkMapIdentity {
  erofs::Digest blob{};
  uint32_t chunk_count = 0;
  uint32_t chunk_size = 0;
};

struct ChunkRecord {
  bool present = false;
  uint32_t crc = 0;  // crc32c_update(0, the chunk's uncompressed bytes), when present
};

// "<hex>.blob.chunk_map.v1" (the version is part of the name) and "<hex>.blob.data".
std::string chunk_map_file_name(const erofs::Digest& blob);
std::string blob_data_file_name(const erofs::Digest& blob);

// The bytes of a map of `id` with no chunk present: the header, then zeroed records.
[[nodiscard]] uint64_t chunk_map_size(uint32_t chunk_count);
std::vector<std::byte> encode_chunk_map_header(const ChunkMapIdentity& id);  // kChunkMapHeaderSize bytes
// The offset of chunk `index`'s record in the map file.
[[nodiscard]] inline uint64_t chunk_record_offset(uint64_t index) {
  return kChunkMapHeaderSize + index * kChunkMapRecordSize;
}
std::array<std::byte, kChunkMapRecordSize> encode_chunk_record(const ChunkRecord& record);
ChunkRecord decode_chunk_record(std::span<const std::byte, kChunkMapRecordSize> bytes);

// Ok when `header` (the first bytes of a map file, up to kChunkMapHeaderSize of them) is the
// header of a map of `want` and `file_size` its exact size; else an EINVAL error saying what is
// wrong (truncated, bad magic, another version, bad checksum, another blob or chunk count).
Status check_chunk_map(std::span<const std::byte> header, uint64_t file_size, const ChunkMapIdentity& want);

}  // namespace ferry::storage
