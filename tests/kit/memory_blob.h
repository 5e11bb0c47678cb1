// MemoryBlob: a Ferry blob built in memory from chunk contents (compressed with the image
// format's codecs, each chunk on its own, stored raw when that is not smaller), with the chunk
// table that describes it as device 1, and the uncompressed device it must read as. For tests,
// fuzzers and benchmarks of ChunkedBlobSource; header-only (link ferry_storage).
#pragma once

#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <vector>

#include "erofs/chunk_table.h"
#include "storage/chunk_codec.h"

namespace ferry::testkit {

struct MemoryBlob {
  std::shared_ptr<erofs::ChunkTable> table;
  std::vector<std::byte> stored;  // the blob file
  std::vector<std::byte> device;  // chunks at their device offsets, zero padded to 4 KiB
};

inline MemoryBlob make_memory_blob(const std::vector<std::span<const std::byte>>& chunks,
                                   erofs::Compression algorithm, uint32_t chunk_size) {
  MemoryBlob b;
  b.table = std::make_shared<erofs::ChunkTable>();
  b.table->chunk_size = chunk_size;
  erofs::BlobInfo blob;
  blob.digest.fill(0xAB);
  blob.device_id = 1;
  blob.compressor = algorithm;
  blob.chunk_count = static_cast<uint32_t>(chunks.size());
  storage::ChunkCompressor compressor(algorithm);
  std::vector<std::byte> out;
  for (const auto& data : chunks) {
    erofs::ChunkInfo c;
    c.device_offset = b.device.size();
    c.blob_offset = b.stored.size();
    c.size = static_cast<uint32_t>(data.size());
    auto how = compressor.compress(data, out);
    if (!how.ok()) throw std::runtime_error(how.error().message);
    c.compression = *how;
    c.stored_size = static_cast<uint32_t>(out.size());
    c.digest = storage::sha256(data);
    b.stored.insert(b.stored.end(), out.begin(), out.end());
    b.device.insert(b.device.end(), data.begin(), data.end());
    b.device.resize((b.device.size() + 4095) & ~size_t{4095});
    b.table->chunks.push_back(c);
  }
  blob.blob_size = b.stored.size();
  blob.device_size = b.device.size();
  b.table->blobs.push_back(blob);
  return b;
}

inline MemoryBlob make_memory_blob(const std::vector<std::vector<std::byte>>& chunks, erofs::Compression algorithm,
                                   uint32_t chunk_size) {
  return make_memory_blob(std::vector<std::span<const std::byte>>(chunks.begin(), chunks.end()), algorithm,
                          chunk_size);
}

// Chunk contents: compressible bytes (words from a small alphabet), or random ones that
// compression cannot shrink (stored raw), the same for the same seed.
inline std::vector<std::byte> chunk_bytes(size_t n, uint64_t seed, bool compressible = true) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i] = compressible ? static_cast<std::byte>('a' + rng() % 6) : static_cast<std::byte>(rng());
  }
  return out;
}

}  // namespace ferry::testkit
