// Encoding and validating the Ferry header and chunk table (docs/image-format.md §3.1, §5).
// The field offsets below are the document's tables; encoder and parser share them.
#include "erofs/chunk_table.h"

#include <algorithm>
#include <cstring>

#include "common/crc32c.h"
#include "common/le.h"

namespace ferry::erofs {
namespace {

// Ferry header fields.
constexpr size_t kHdrVersion = 8, kHdrSize = 12, kHdrTableOffset = 16, kHdrTableSize = 24, kHdrTableCrc = 32,
                 kHdrFlags = 36, kHdrReserved = 40, kHdrCrc = 60;
// Chunk table header fields.
constexpr size_t kTabVersion = 8, kTabHeaderSize = 12, kTabBlobCount = 16, kTabBlobRecordSize = 20,
                 kTabChunkCount = 24, kTabChunkRecordSize = 32, kTabBlockSize = 36, kTabChunkSize = 40,
                 kTabPrefetchCount = 44, kTabReserved = 48;
// Blob record fields.
constexpr size_t kBlobDigest = 0, kBlobSize = 32, kBlobDeviceSize = 40, kBlobFirstChunk = 48,
                 kBlobChunkCount = 56, kBlobDeviceId = 60, kBlobCompressor = 62, kBlobReserved = 63;
// Chunk record fields.
constexpr size_t kChunkDeviceOffset = 0, kChunkBlobOffset = 8, kChunkSize = 16, kChunkStoredSize = 20,
                 kChunkCompression = 24, kChunkReserved = 25, kChunkReservedEnd = 32, kChunkDigest = 32;
// Prefetch record fields.
constexpr size_t kPrefetchFirstChunk = 0, kPrefetchChunkCount = 8, kPrefetchReserved = 12;

template <typename T>
void store(std::byte* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

template <typename T>
T load(std::span<const std::byte> bytes, size_t offset) {
  return load_le<T>(bytes.data() + offset);
}

bool all_zero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

uint32_t crc(std::span<const std::byte> bytes) {
  return crc32c_update(~0U, bytes);
}

uint64_t round_up_block(uint64_t v) {
  return (v + kFerryBlockSize - 1) & ~uint64_t{kFerryBlockSize - 1};
}

Error bad(const std::string& what) {
  return Error{EIO, "corrupt Ferry chunk table: " + what};
}

bool valid_chunk_size(uint32_t v) {
  return v >= kMinChunkSize && v <= kMaxChunkSize && (v & (v - 1)) == 0;
}

}  // namespace

std::string digest_hex(const Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (size_t i = 0; i < digest.size(); ++i) {
    out[2 * i] = kHex[digest[i] >> 4U];
    out[2 * i + 1] = kHex[digest[i] & 0xFU];
  }
  return out;
}

std::span<const ChunkInfo> ChunkTable::chunks_of(uint16_t device_id) const {
  if (device_id == 0 || device_id > blobs.size()) return {};
  const BlobInfo& blob = blobs[device_id - 1U];
  return std::span<const ChunkInfo>(chunks).subspan(blob.first_chunk, blob.chunk_count);
}

const ChunkInfo* ChunkTable::find(uint16_t device_id, uint64_t device_offset) const {
  auto span = chunks_of(device_id);
  // The first chunk starting after the offset; the one before it is the candidate.
  auto it = std::upper_bound(span.begin(), span.end(), device_offset,
                             [](uint64_t off, const ChunkInfo& c) { return off < c.device_offset; });
  if (it == span.begin()) return nullptr;
  const ChunkInfo& c = *(it - 1);
  if (device_offset - c.device_offset >= round_up_block(c.size)) return nullptr;
  return &c;
}

std::vector<std::byte> encode_chunk_table(const ChunkTable& table) {
  std::vector<std::byte> out(kChunkTableHeaderSize + table.blobs.size() * kBlobRecordSize +
                             table.chunks.size() * kChunkRecordSize + table.prefetch.size() * kPrefetchRecordSize);
  std::byte* p = out.data();
  std::memcpy(p, kChunkTableMagic, sizeof kChunkTableMagic);
  store<uint32_t>(p + kTabVersion, kChunkTableVersion);
  store<uint32_t>(p + kTabHeaderSize, kChunkTableHeaderSize);
  store<uint32_t>(p + kTabBlobCount, static_cast<uint32_t>(table.blobs.size()));
  store<uint32_t>(p + kTabBlobRecordSize, kBlobRecordSize);
  store<uint64_t>(p + kTabChunkCount, table.chunks.size());
  store<uint32_t>(p + kTabChunkRecordSize, kChunkRecordSize);
  store<uint32_t>(p + kTabBlockSize, table.block_size);
  store<uint32_t>(p + kTabChunkSize, table.chunk_size);
  store<uint32_t>(p + kTabPrefetchCount, static_cast<uint32_t>(table.prefetch.size()));
  p += kChunkTableHeaderSize;
  for (const BlobInfo& b : table.blobs) {
    std::memcpy(p + kBlobDigest, b.digest.data(), b.digest.size());
    store<uint64_t>(p + kBlobSize, b.blob_size);
    store<uint64_t>(p + kBlobDeviceSize, b.device_size);
    store<uint64_t>(p + kBlobFirstChunk, b.first_chunk);
    store<uint32_t>(p + kBlobChunkCount, b.chunk_count);
    store<uint16_t>(p + kBlobDeviceId, b.device_id);
    store<uint8_t>(p + kBlobCompressor, static_cast<uint8_t>(b.compressor));
    p += kBlobRecordSize;
  }
  for (const ChunkInfo& c : table.chunks) {
    store<uint64_t>(p + kChunkDeviceOffset, c.device_offset);
    store<uint64_t>(p + kChunkBlobOffset, c.blob_offset);
    store<uint32_t>(p + kChunkSize, c.size);
    store<uint32_t>(p + kChunkStoredSize, c.stored_size);
    store<uint8_t>(p + kChunkCompression, static_cast<uint8_t>(c.compression));
    std::memcpy(p + kChunkDigest, c.digest.data(), c.digest.size());
    p += kChunkRecordSize;
  }
  for (const PrefetchRange& r : table.prefetch) {
    store<uint64_t>(p + kPrefetchFirstChunk, r.first_chunk);
    store<uint32_t>(p + kPrefetchChunkCount, r.chunk_count);
    p += kPrefetchRecordSize;
  }
  return out;
}

std::array<std::byte, kFerryHeaderSize> encode_ferry_header(uint64_t table_offset,
                                                            std::span<const std::byte> table) {
  std::array<std::byte, kFerryHeaderSize> h{};
  std::memcpy(h.data(), kFerryHeaderMagic, sizeof kFerryHeaderMagic);
  store<uint32_t>(h.data() + kHdrVersion, kFerryHeaderVersion);
  store<uint32_t>(h.data() + kHdrSize, kFerryHeaderSize);
  store<uint64_t>(h.data() + kHdrTableOffset, table_offset);
  store<uint64_t>(h.data() + kHdrTableSize, table.size());
  store<uint32_t>(h.data() + kHdrTableCrc, crc(table));
  store<uint32_t>(h.data() + kHdrCrc, crc(std::span<const std::byte>(h).first(kHdrCrc)));
  return h;
}

Result<ChunkTable> parse_chunk_table(std::span<const std::byte> bytes) {
  if (bytes.size() < kChunkTableHeaderSize) {
    return bad("the table is " + std::to_string(bytes.size()) + " bytes, smaller than its 64-byte header");
  }
  if (std::memcmp(bytes.data(), kChunkTableMagic, sizeof kChunkTableMagic) != 0) return bad("wrong magic");
  const auto version = load<uint32_t>(bytes, kTabVersion);
  if (version != kChunkTableVersion) {
    return bad("version " + std::to_string(version) + " is not the supported version " +
               std::to_string(kChunkTableVersion));
  }
  const uint64_t header_size = load<uint32_t>(bytes, kTabHeaderSize);
  const uint64_t blob_count = load<uint32_t>(bytes, kTabBlobCount);
  const uint64_t blob_record = load<uint32_t>(bytes, kTabBlobRecordSize);
  const uint64_t chunk_count = load<uint64_t>(bytes, kTabChunkCount);
  const uint64_t chunk_record = load<uint32_t>(bytes, kTabChunkRecordSize);
  const uint64_t prefetch_count = load<uint32_t>(bytes, kTabPrefetchCount);
  ChunkTable table;
  table.block_size = load<uint32_t>(bytes, kTabBlockSize);
  table.chunk_size = load<uint32_t>(bytes, kTabChunkSize);
  if (header_size < kChunkTableHeaderSize || blob_record < kBlobRecordSize ||
      chunk_record < kChunkRecordSize || header_size % 8 != 0 || blob_record % 8 != 0 ||
      chunk_record % 8 != 0) {
    return bad("header or record sizes " + std::to_string(header_size) + "/" + std::to_string(blob_record) +
               "/" + std::to_string(chunk_record) + " are below 64 or not multiples of 8");
  }
  if (!all_zero(bytes.subspan(kTabReserved, kChunkTableHeaderSize - kTabReserved))) {
    return bad("reserved header bytes are not zero");
  }
  if (table.block_size != kFerryBlockSize) {
    return bad("block size " + std::to_string(table.block_size) + " is not 4096");
  }
  if (!valid_chunk_size(table.chunk_size)) {
    return bad("chunk size " + std::to_string(table.chunk_size) + " is not a power of two in 4 KiB..64 MiB");
  }
  // Sizes are bounded by the buffer before anything is multiplied or allocated.
  const uint64_t rest = bytes.size() - std::min<uint64_t>(bytes.size(), header_size);
  if (header_size > bytes.size() || blob_count > rest / blob_record ||
      chunk_count > (rest - blob_count * blob_record) / chunk_record ||
      prefetch_count > (rest - blob_count * blob_record - chunk_count * chunk_record) / kPrefetchRecordSize ||
      header_size + blob_count * blob_record + chunk_count * chunk_record + prefetch_count * kPrefetchRecordSize !=
          bytes.size()) {
    return bad("the header names " + std::to_string(blob_count) + " blobs, " + std::to_string(chunk_count) +
               " chunks and " + std::to_string(prefetch_count) + " prefetch ranges, which do not fill the table's " +
               std::to_string(bytes.size()) + " bytes");
  }
  if (blob_count > 0xFFFF) return bad(std::to_string(blob_count) + " blobs, more than EROFS devices can be");

  table.blobs.reserve(blob_count);
  uint64_t next_chunk = 0;
  for (uint64_t i = 0; i < blob_count; ++i) {
    auto r = bytes.subspan(header_size + i * blob_record, blob_record);
    const std::string name = "blob record " + std::to_string(i);
    BlobInfo b;
    std::memcpy(b.digest.data(), r.data() + kBlobDigest, b.digest.size());
    b.blob_size = load<uint64_t>(r, kBlobSize);
    b.device_size = load<uint64_t>(r, kBlobDeviceSize);
    b.first_chunk = load<uint64_t>(r, kBlobFirstChunk);
    b.chunk_count = load<uint32_t>(r, kBlobChunkCount);
    b.device_id = load<uint16_t>(r, kBlobDeviceId);
    const auto compressor = load<uint8_t>(r, kBlobCompressor);
    if (b.device_id != i + 1)
      return bad(name + ": device id " + std::to_string(b.device_id) + ", expected " + std::to_string(i + 1));
    if (compressor > kMaxCompressionCode)
      return bad(name + ": unknown compressor " + std::to_string(compressor));
    b.compressor = static_cast<Compression>(compressor);
    if (!all_zero(r.subspan(kBlobReserved, 1))) return bad(name + ": reserved bytes are not zero");
    if (b.first_chunk != next_chunk || b.chunk_count > chunk_count - next_chunk) {
      return bad(name + ": chunks " + std::to_string(b.first_chunk) + "+" + std::to_string(b.chunk_count) +
                 " do not follow the previous blob's within " + std::to_string(chunk_count) + " chunks");
    }
    if (b.device_size % kFerryBlockSize != 0 || b.device_size / kFerryBlockSize > UINT32_MAX) {
      return bad(name + ": device size " + std::to_string(b.device_size) +
                 " is not a whole number of 32-bit blocks");
    }
    next_chunk += b.chunk_count;
    table.blobs.push_back(b);
  }
  if (next_chunk != chunk_count) {
    return bad("the blobs own " + std::to_string(next_chunk) + " of " + std::to_string(chunk_count) +
               " chunks");
  }

  const uint64_t chunks_start = header_size + blob_count * blob_record;
  table.chunks.reserve(chunk_count);
  for (const BlobInfo& b : table.blobs) {
    uint64_t device_end = 0;  // where the previous chunk's padded range ends
    uint64_t blob_end = 0;
    for (uint64_t k = 0; k < b.chunk_count; ++k) {
      const uint64_t index = b.first_chunk + k;
      auto r = bytes.subspan(chunks_start + index * chunk_record, chunk_record);
      const std::string name =
          "chunk record " + std::to_string(index) + " (blob " + std::to_string(b.device_id) + ")";
      ChunkInfo c;
      c.device_offset = load<uint64_t>(r, kChunkDeviceOffset);
      c.blob_offset = load<uint64_t>(r, kChunkBlobOffset);
      c.size = load<uint32_t>(r, kChunkSize);
      c.stored_size = load<uint32_t>(r, kChunkStoredSize);
      const auto compression = load<uint8_t>(r, kChunkCompression);
      std::memcpy(c.digest.data(), r.data() + kChunkDigest, c.digest.size());
      if (compression > kMaxCompressionCode)
        return bad(name + ": unknown compression " + std::to_string(compression));
      c.compression = static_cast<Compression>(compression);
      if (!all_zero(r.subspan(kChunkReserved, kChunkReservedEnd - kChunkReserved))) {
        return bad(name + ": reserved bytes are not zero");
      }
      if (c.size == 0 || c.size > table.chunk_size) {
        return bad(name + ": size " + std::to_string(c.size) + " is outside 1.." +
                   std::to_string(table.chunk_size));
      }
      if (c.stored_size == 0 || (c.compression == Compression::kNone && c.stored_size != c.size)) {
        return bad(name + ": stored size " + std::to_string(c.stored_size) + " does not fit size " +
                   std::to_string(c.size) + " and compression " + std::to_string(compression));
      }
      if (c.device_offset % kFerryBlockSize != 0 || c.device_offset < device_end ||
          c.device_offset > b.device_size || round_up_block(c.size) > b.device_size - c.device_offset) {
        return bad(name + ": device range " + std::to_string(c.device_offset) + "+" + std::to_string(c.size) +
                   " is unaligned, overlaps the previous chunk or leaves the device (" +
                   std::to_string(b.device_size) + " bytes)");
      }
      if (c.blob_offset < blob_end || c.blob_offset > b.blob_size ||
          c.stored_size > b.blob_size - c.blob_offset) {
        return bad(name + ": stored range " + std::to_string(c.blob_offset) + "+" +
                   std::to_string(c.stored_size) + " overlaps the previous chunk or leaves the blob (" +
                   std::to_string(b.blob_size) + " bytes)");
      }
      if (b.compressor == Compression::kNone &&
          (c.compression != Compression::kNone || c.blob_offset != c.device_offset)) {
        return bad(name + ": an uncompressed blob must store each chunk at its device offset, uncompressed");
      }
      device_end = c.device_offset + round_up_block(c.size);
      blob_end = c.blob_offset + c.stored_size;
      table.chunks.push_back(c);
    }
    if (b.compressor == Compression::kNone && b.blob_size != b.device_size) {
      return bad("blob record " + std::to_string(b.device_id - 1U) + ": an uncompressed blob of " +
                 std::to_string(b.blob_size) + " bytes is not its device (" + std::to_string(b.device_size) +
                 " bytes)");
    }
  }

  const uint64_t prefetch_start = chunks_start + chunk_count * chunk_record;
  table.prefetch.reserve(prefetch_count);
  for (uint64_t i = 0; i < prefetch_count; ++i) {
    auto r = bytes.subspan(prefetch_start + i * kPrefetchRecordSize, kPrefetchRecordSize);
    const std::string name = "prefetch record " + std::to_string(i);
    PrefetchRange range{load<uint64_t>(r, kPrefetchFirstChunk), load<uint32_t>(r, kPrefetchChunkCount)};
    if (!all_zero(r.subspan(kPrefetchReserved))) return bad(name + ": reserved bytes are not zero");
    // The blob holding the first chunk (blobs partition the chunks in order) must hold the whole range.
    auto after = std::upper_bound(table.blobs.begin(), table.blobs.end(), range.first_chunk,
                                  [](uint64_t c, const BlobInfo& b) { return c < b.first_chunk; });
    auto owner = after == table.blobs.begin() ? table.blobs.end() : after - 1;
    if (owner != table.blobs.end() && range.first_chunk - owner->first_chunk >= owner->chunk_count) {
      owner = table.blobs.end();  // past the last chunk
    }
    if (range.chunk_count == 0 || owner == table.blobs.end() ||
        range.chunk_count > owner->first_chunk + owner->chunk_count - range.first_chunk) {
      return bad(name + ": chunks " + std::to_string(range.first_chunk) + "+" + std::to_string(range.chunk_count) +
                 " are not a non-empty run of one blob's chunks");
    }
    table.prefetch.push_back(range);
  }
  return table;
}

Status check_chunk_table_devices(const ChunkTable& table, std::span<const DeviceSlot> slots) {
  if (table.blobs.size() != slots.size()) {
    return bad("it lists " + std::to_string(table.blobs.size()) + " blobs but the bootstrap has " +
               std::to_string(slots.size()) + " devices");
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    const BlobInfo& b = table.blobs[i];
    const std::string hex = digest_hex(b.digest);
    if (slots[i].tag != hex) {
      return bad("blob " + std::to_string(i + 1) + " is " + hex + " but device " + std::to_string(i + 1) +
                 " is tagged '" + slots[i].tag + "'");
    }
    if (slots[i].blocks * kFerryBlockSize != b.device_size) {
      return bad("blob " + std::to_string(i + 1) + " has a " + std::to_string(b.device_size) +
                 "-byte device but its slot says " + std::to_string(slots[i].blocks) + " blocks");
    }
  }
  return {};
}

Result<std::optional<ChunkTable>> load_chunk_table(const ByteSource& bootstrap) {
  std::array<std::byte, kFerryHeaderSize> h{};
  if (bootstrap.size() < kFerryHeaderSize) return std::optional<ChunkTable>{};
  FERRY_TRY(bootstrap.read_exact(0, h));
  if (std::memcmp(h.data(), kFerryHeaderMagic, sizeof kFerryHeaderMagic) != 0)
    return std::optional<ChunkTable>{};
  const std::string where = "Ferry header of '" + bootstrap.name() + "'";
  auto hs = std::span<const std::byte>(h);
  if (load<uint32_t>(hs, kHdrCrc) != crc(hs.first(kHdrCrc))) return bad(where + ": checksum mismatch");
  const auto version = load<uint32_t>(hs, kHdrVersion);
  if (version != kFerryHeaderVersion) {
    return bad(where + ": version " + std::to_string(version) + " is not the supported version " +
               std::to_string(kFerryHeaderVersion));
  }
  if (load<uint32_t>(hs, kHdrSize) != kFerryHeaderSize || load<uint32_t>(hs, kHdrFlags) != 0 ||
      !all_zero(hs.subspan(kHdrReserved, kHdrCrc - kHdrReserved))) {
    return bad(where + ": unknown header size, flags or reserved bytes");
  }
  const auto offset = load<uint64_t>(hs, kHdrTableOffset);
  const auto size = load<uint64_t>(hs, kHdrTableSize);
  if (offset % kFerryBlockSize != 0 || offset > bootstrap.size() || size > bootstrap.size() - offset ||
      size < kChunkTableHeaderSize) {
    return bad(where + ": the table (" + std::to_string(size) + " bytes at " + std::to_string(offset) +
               ") does not lie inside the " + std::to_string(bootstrap.size()) + "-byte bootstrap");
  }
  std::vector<std::byte> bytes(size);  // bounded by the file's size
  FERRY_TRY(bootstrap.read_exact(offset, bytes));
  if (crc(bytes) != load<uint32_t>(hs, kHdrTableCrc))
    return bad(where + ": the table's checksum does not match");
  auto table = parse_chunk_table(bytes);
  if (!table.ok()) return std::move(table).error();
  return std::optional<ChunkTable>(std::move(table).value());
}

}  // namespace ferry::erofs
