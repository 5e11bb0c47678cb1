// LayerStream: the tar bytes of one layer, decompressed here rather than by libarchive so that
// every integrity check of the compressed format is made: gzip members with their CRC-32 and
// length (zlib), zstd frames with their checksums, and the stream read to its very end (libarchive
// stops at the tar's end marker and never reads, let alone checks, a gzip trailer). The format is
// detected from the first bytes: gzip (1f 8b), zstd (28 b5 2f fd), else a plain tar.
//
// Errors are EIO with what is wrong ("gzip: incorrect data check", "truncated zstd stream").
// Not thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"

namespace ferry::builder {

class LayerStream {
 public:
  // Reads `path`, or `bytes` when path is empty (the bytes must outlive the stream).
  static Result<std::unique_ptr<LayerStream>> open(const std::string& path, std::span<const std::byte> bytes);
  virtual ~LayerStream() = default;

  // The next piece of tar bytes, valid until the next call; empty at the end of the stream.
  virtual Result<std::span<const std::byte>> read() = 0;
  // Reads what is left (after the tar's end marker) and checks it: the compressed stream must end
  // properly. Bytes after the tar of a plain layer are not looked at.
  virtual Status finish();
  [[nodiscard]] virtual const char* format() const = 0;
};

}  // namespace ferry::builder
