// ByteSource: random-access, read-only bytes (an image file, a blob device).
//
// The EROFS reader reads everything through this seam, so it never knows where bytes live.
// Implementations must be safe for concurrent read_exact() calls from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "common/result.h"

namespace ferry {

class ByteSource {
 public:
  virtual ~ByteSource() = default;

  // Total size in bytes.
  [[nodiscard]] virtual uint64_t size() const = 0;

  // Reads exactly out.size() bytes at offset. A range past size() is an EIO error naming
  // the source; a short read never happens silently.
  virtual Status read_exact(uint64_t offset, std::span<std::byte> out) const = 0;

  // The whole content as one read-only view when the source is memory-mapped, else empty.
  // Used for metadata, which is read far more often than it is large.
  [[nodiscard]] virtual std::span<const std::byte> view() const { return {}; }

  // A human-readable name (a path) for error messages.
  [[nodiscard]] virtual const std::string& name() const = 0;
};

}  // namespace ferry
