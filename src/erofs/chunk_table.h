// The Ferry chunk table: Ferry's index of every chunk of every blob of an image, stored in the
// bootstrap where the kernel never looks (docs/image-format.md §3.1 and §5 define the bytes).
//
// Written by the builder (encode_*), read by whoever serves blob data (ferryd's storage, the blob
// cache, `ferry-image check`): for a device offset it names the stored bytes, their compression
// and the sha256 the uncompressed bytes must have. This file depends on src/common only.
//
// Every reader entry point takes untrusted bytes: each field is bounds- and consistency-checked
// and any violation is an Error{EIO, ...} naming the field and the record; nothing here crashes,
// allocates without bound or reads out of range on any input. A parsed ChunkTable is immutable
// and safe to share between threads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/byte_source.h"
#include "common/result.h"
#include "erofs/erofs_image.h"

namespace ferry::erofs {

inline constexpr uint32_t kFerryBlockSize = 4096;
inline constexpr uint32_t kMinChunkSize = 4096;
inline constexpr uint32_t kMaxChunkSize = 64U << 20U;

// The Ferry header at offset 0 of a bootstrap (the 1024 bytes the kernel ignores).
inline constexpr size_t kFerryHeaderSize = 64;
inline constexpr char kFerryHeaderMagic[8] = {'F', 'E', 'R', 'R', 'Y', 'I', 'M', 'G'};
inline constexpr uint32_t kFerryHeaderVersion = 1;

inline constexpr char kChunkTableMagic[8] = {'F', 'E', 'R', 'R', 'Y', 'C', 'T', '\0'};
inline constexpr uint32_t kChunkTableVersion = 1;
inline constexpr uint32_t kChunkTableHeaderSize = 64;
inline constexpr uint32_t kBlobRecordSize = 64;
inline constexpr uint32_t kChunkRecordSize = 64;
inline constexpr uint32_t kPrefetchRecordSize = 16;

// How one chunk's bytes are stored in its blob file; the numbers are on disk.
enum class Compression : uint8_t { kNone = 0, kZstd = 1, kLz4 = 2 };
inline constexpr uint8_t kMaxCompressionCode = 2;

using Digest = std::array<uint8_t, 32>;  // sha256

struct ChunkInfo {
  uint64_t device_offset = 0;  // in the blob's uncompressed device, a multiple of 4096
  uint64_t blob_offset = 0;    // of the stored bytes in the blob file
  uint32_t size = 0;           // uncompressed bytes
  uint32_t stored_size = 0;    // bytes in the blob file
  Compression compression = Compression::kNone;
  Digest digest{};  // sha256 of the uncompressed bytes
};

struct BlobInfo {
  Digest digest{};  // sha256 of the blob file; its hex is the device tag
  uint64_t blob_size = 0;
  uint64_t device_size = 0;  // uncompressed device bytes, a multiple of 4096
  uint64_t first_chunk = 0;
  uint32_t chunk_count = 0;
  uint16_t device_id = 0;  // 1-based, = index + 1
  Compression compressor = Compression::kNone;
};

// Chunks to fetch ahead of demand, in the order the image's builder was given their files
// (`ferry-image create --prefetch-files`): `chunk_count` consecutive records of one blob from
// record `first_chunk` (an index into ChunkTable::chunks).
struct PrefetchRange {
  uint64_t first_chunk = 0;
  uint32_t chunk_count = 0;
};

struct ChunkTable {
  uint32_t block_size = kFerryBlockSize;
  uint32_t chunk_size = 0;
  std::vector<BlobInfo> blobs;
  std::vector<ChunkInfo> chunks;
  std::vector<PrefetchRange> prefetch;  // empty: no prefetch list

  // The chunk records of device `device_id` (1-based); empty when there is no such blob.
  [[nodiscard]] std::span<const ChunkInfo> chunks_of(uint16_t device_id) const;
  // The chunk of `device_id` whose block-padded range holds `device_offset`, or nullptr (no
  // such blob, or an offset past its last chunk). O(log n).
  [[nodiscard]] const ChunkInfo* find(uint16_t device_id, uint64_t device_offset) const;
};

// "sha256 hex" of a digest: 64 lowercase hex characters.
std::string digest_hex(const Digest& digest);

// ---- writing (the builder) ---------------------------------------------------------------

// The table's bytes (header + records), exactly table_size long. The caller has built a valid
// table (parse_chunk_table(encode_chunk_table(t)) succeeds for what the builder makes).
std::vector<std::byte> encode_chunk_table(const ChunkTable& table);
// The 64-byte Ferry header naming a table of `table` bytes at table_offset.
std::array<std::byte, kFerryHeaderSize> encode_ferry_header(uint64_t table_offset,
                                                            std::span<const std::byte> table);

// ---- reading (untrusted bytes) -----------------------------------------------------------

// Parses and validates the table's bytes (everything of docs/image-format.md §5 that does not
// need the device table). No checksum here: load_chunk_table checks the header's CRC first.
Result<ChunkTable> parse_chunk_table(std::span<const std::byte> bytes);

// Checks the table against the bootstrap's device table: one blob per slot, in order, each
// record's digest equal to the slot's tag and its device size to the slot's blocks.
Status check_chunk_table_devices(const ChunkTable& table, std::span<const DeviceSlot> slots);

// Reads the Ferry header of a bootstrap and the table it names: std::nullopt when the bootstrap
// has no Ferry header (a plain EROFS image, read raw); an error when the header or the table is
// corrupt (bad CRC, bounds, versions, any record).
Result<std::optional<ChunkTable>> load_chunk_table(const ByteSource& bootstrap);

}  // namespace ferry::erofs
