// Chunk codecs: compressing and decompressing one chunk of a Ferry blob (zstd frames, raw LZ4
// blocks, or stored as is) and sha256 digests, as docs/image-format.md §4 fixes them.
//
// Used by the builder to write blobs and by every reader of blob data to decode and verify a
// chunk before anything is served. ChunkCompressor and Sha256 hold library contexts and are not
// thread-safe: use one per thread. decompress_chunk and sha256 are free of shared state.
// Errors name what failed; decompress_chunk treats its input as untrusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "erofs/chunk_table.h"

namespace ferry::storage {

using erofs::Compression;
using erofs::Digest;

// "none", "zstd", "lz4".
std::string_view compression_name(Compression c);
Result<Compression> parse_compression(std::string_view name);

class ChunkCompressor {
 public:
  // level 0 means the codec's default (zstd 3); lz4 ignores it.
  explicit ChunkCompressor(Compression algorithm, int level = 0);
  ~ChunkCompressor();
  ChunkCompressor(const ChunkCompressor&) = delete;
  ChunkCompressor& operator=(const ChunkCompressor&) = delete;

  // Compresses `in` into `out` (resized to the stored bytes) and returns how the bytes are
  // stored: the algorithm, or kNone (out = in) when compression would not make them smaller.
  Result<Compression> compress(std::span<const std::byte> in, std::vector<std::byte>& out);

 private:
  struct Contexts;
  Compression algorithm_;
  int level_;
  std::unique_ptr<Contexts> ctx_;
};

// Decodes `stored` into exactly out.size() bytes. Corrupt input, or output of another size, is
// an EIO error; never writes outside `out`.
Status decompress_chunk(Compression compression, std::span<const std::byte> stored, std::span<std::byte> out);

Digest sha256(std::span<const std::byte> data);

// Incremental sha256 (a blob file while it is written).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;
  void update(std::span<const std::byte> data);
  Digest finish();  // the object may not be used after

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace ferry::storage
