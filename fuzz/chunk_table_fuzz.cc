// libFuzzer target for the chunk table reader (src/erofs/chunk_table.h): the bytes of a Ferry
// bootstrap that ferryd's storage and `ferry-image check` trust only after validation.
// Each input is tried three ways: as a whole bootstrap (Ferry header + table, CRCs checked), as
// raw table bytes, and as table bytes with the header made consistent with the input's length,
// so that record validation runs from the first input on. A table that parses is then used:
// lookups at many offsets, and the cross-check against a device table derived from it.
// Run: build-fuzz/bin/chunk_table_fuzz -max_total_time=60 CORPUS_DIR
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "common/memory_source.h"
#include "erofs/chunk_table.h"

namespace {

using namespace ferry::erofs;

void use(const ChunkTable& table) {
  std::vector<DeviceSlot> slots;
  for (const BlobInfo& b : table.blobs) {
    DeviceSlot s;
    s.device_id = b.device_id;
    s.tag = digest_hex(b.digest);
    s.blocks = b.device_size / kFerryBlockSize;
    slots.push_back(s);
    for (const ChunkInfo& c : table.chunks_of(b.device_id)) {
      for (uint64_t off :
           {c.device_offset, c.device_offset + c.size, c.device_offset + 4095, c.device_offset - 1}) {
        const ChunkInfo* found = table.find(b.device_id, off);
        if (found != nullptr &&
            (off < found->device_offset || off - found->device_offset >= 4096 + uint64_t{found->size})) {
          __builtin_trap();  // find() answered a chunk that does not hold the offset
        }
      }
    }
  }
  if (!check_chunk_table_devices(table, slots).ok()) __builtin_trap();  // derived slots must match
  (void)table.find(0, 0);
  (void)table.find(0xFFFF, UINT64_MAX);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto bytes = std::as_bytes(std::span<const uint8_t>(data, size));
  {
    ferry::MemorySource source(bytes, "fuzz bootstrap");
    auto loaded = load_chunk_table(source);
    if (loaded.ok() && loaded->has_value()) use(**loaded);
  }
  if (auto parsed = parse_chunk_table(bytes); parsed.ok()) use(*parsed);

  if (size >= kChunkTableHeaderSize) {
    std::vector<std::byte> table(bytes.begin(), bytes.end());
    const size_t records = (size - kChunkTableHeaderSize) / 64;
    table.resize(kChunkTableHeaderSize + records * 64);
    const uint32_t blobs = records == 0 ? 0 : 1 + std::to_integer<uint32_t>(table[16]) % records;
    const uint64_t chunks = records - blobs;
    const uint32_t version = kChunkTableVersion, header = 64, record = 64, block = 4096;
    std::memcpy(table.data(), kChunkTableMagic, 8);
    std::memcpy(table.data() + 8, &version, 4);
    std::memcpy(table.data() + 12, &header, 4);
    std::memcpy(table.data() + 16, &blobs, 4);
    std::memcpy(table.data() + 20, &record, 4);
    std::memcpy(table.data() + 24, &chunks, 8);
    std::memcpy(table.data() + 32, &record, 4);
    std::memcpy(table.data() + 36, &block, 4);
    if (auto parsed = parse_chunk_table(table); parsed.ok()) use(*parsed);
  }
  return 0;
}
