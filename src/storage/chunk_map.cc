#include "storage/chunk_map.h"

#include <cstring>

#include "common/crc32c.h"
#include "common/le.h"

namespace ferry::storage {

namespace {

// Header fields (little-endian); bytes [kHeaderCrcOffset + 4, kChunkMapHeaderSize) are zero.
constexpr size_t kVersionOffset = 8;
constexpr size_t kHeaderSizeOffset = 12;
constexpr size_t kRecordSizeOffset = 16;
constexpr size_t kChunkCountOffset = 20;
constexpr size_t kChunkSizeOffset = 24;
constexpr size_t kReservedOffset = 28;
constexpr size_t kDigestOffset = 32;
constexpr size_t kHeaderCrcOffset = 64;  // crc32c of bytes [0, 64)

template <typename T>
void store_le(std::byte* p, T v) {
  std::memcpy(p, &v, sizeof(T));  // little-endian hosts only (see common/le.h)
}

uint32_t header_crc(std::span<const std::byte> header) {
  return crc32c_update(0, header.first(kHeaderCrcOffset));
}

}  // namespace

std::string chunk_map_file_name(const erofs::Digest& blob) {
  return erofs::digest_hex(blob) + ".blob.chunk_map.v" + std::to_string(kChunkMapVersion);
}

std::string blob_data_file_name(const erofs::Digest& blob) {
  return erofs::digest_hex(blob) + ".blob.data";
}

uint64_t chunk_map_size(uint32_t chunk_count) {
  return chunk_record_offset(chunk_count);
}

std::vector<std::byte> encode_chunk_map_header(const ChunkMapIdentity& id) {
  std::vector<std::byte> h(kChunkMapHeaderSize);
  std::memcpy(h.data(), kChunkMapMagic, sizeof kChunkMapMagic);
  store_le<uint32_t>(h.data() + kVersionOffset, kChunkMapVersion);
  store_le<uint32_t>(h.data() + kHeaderSizeOffset, kChunkMapHeaderSize);
  store_le<uint32_t>(h.data() + kRecordSizeOffset, kChunkMapRecordSize);
  store_le<uint32_t>(h.data() + kChunkCountOffset, id.chunk_count);
  store_le<uint32_t>(h.data() + kChunkSizeOffset, id.chunk_size);
  store_le<uint32_t>(h.data() + kReservedOffset, 0);
  std::memcpy(h.data() + kDigestOffset, id.blob.data(), id.blob.size());
  store_le<uint32_t>(h.data() + kHeaderCrcOffset, header_crc(h));
  return h;
}

std::array<std::byte, kChunkMapRecordSize> encode_chunk_record(const ChunkRecord& record) {
  std::array<std::byte, kChunkMapRecordSize> r{};
  store_le<uint32_t>(r.data(), record.present ? kChunkPresent : 0U);
  store_le<uint32_t>(r.data() + 4, record.present ? record.crc : 0U);
  return r;
}

ChunkRecord decode_chunk_record(std::span<const std::byte, kChunkMapRecordSize> bytes) {
  ChunkRecord r;
  r.present = load_le<uint32_t>(bytes.data()) == kChunkPresent;
  if (r.present) r.crc = load_le<uint32_t>(bytes.data() + 4);
  return r;
}

Status check_chunk_map(std::span<const std::byte> header, uint64_t file_size, const ChunkMapIdentity& want) {
  if (header.size() < kHeaderCrcOffset + 4 || file_size < kChunkMapHeaderSize) {
    return Error{EINVAL, "truncated: " + std::to_string(file_size) + " bytes, shorter than its header"};
  }
  if (std::memcmp(header.data(), kChunkMapMagic, sizeof kChunkMapMagic) != 0) {
    return Error{EINVAL, "not a Ferry chunk map (bad magic)"};
  }
  if (load_le<uint32_t>(header.data() + kHeaderCrcOffset) != header_crc(header)) {
    return Error{EINVAL, "its header's checksum does not match (damaged)"};
  }
  const auto version = load_le<uint32_t>(header.data() + kVersionOffset);
  if (version != kChunkMapVersion) {
    return Error{EINVAL, "version " + std::to_string(version) + ", this daemon reads version " +
                             std::to_string(kChunkMapVersion)};
  }
  if (load_le<uint32_t>(header.data() + kHeaderSizeOffset) != kChunkMapHeaderSize ||
      load_le<uint32_t>(header.data() + kRecordSizeOffset) != kChunkMapRecordSize ||
      load_le<uint32_t>(header.data() + kReservedOffset) != 0) {
    return Error{EINVAL, "header or record size, or reserved field, is not version 1's"};
  }
  if (std::memcmp(header.data() + kDigestOffset, want.blob.data(), want.blob.size()) != 0) {
    erofs::Digest other{};
    std::memcpy(other.data(), header.data() + kDigestOffset, other.size());
    return Error{EINVAL, "it is the map of blob sha256:" + erofs::digest_hex(other)};
  }
  const auto count = load_le<uint32_t>(header.data() + kChunkCountOffset);
  const auto chunk_size = load_le<uint32_t>(header.data() + kChunkSizeOffset);
  if (count != want.chunk_count || chunk_size != want.chunk_size) {
    return Error{EINVAL, "it maps " + std::to_string(count) + " chunks of " + std::to_string(chunk_size) +
                             " bytes, the chunk table has " + std::to_string(want.chunk_count) + " of " +
                             std::to_string(want.chunk_size)};
  }
  if (file_size != chunk_map_size(count)) {
    return Error{EINVAL, std::to_string(file_size) + " bytes, a map of " + std::to_string(count) +
                             " chunks has " + std::to_string(chunk_map_size(count)) + " (truncated)"};
  }
  return {};
}

}  // namespace ferry::storage
