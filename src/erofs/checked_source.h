// CheckedSource: one device of an image (the primary image or an extra blob), with every access
// bounds-checked against its size.
//
// Metadata is decoded in place from the memory map when the ByteSource offers one and copied
// into a small caller-provided scratch buffer otherwise, so callers never allocate. Failures
// are EIO errors that name the device, the offset and the length; callers prefix what they
// were reading (nid, structure) with Error::context().
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/byte_source.h"
#include "common/result.h"

namespace ferry::erofs {

class CheckedSource {
 public:
  explicit CheckedSource(std::shared_ptr<const ByteSource> source);

  [[nodiscard]] uint64_t size() const { return size_; }
  [[nodiscard]] const std::string& name() const { return source_->name(); }
  [[nodiscard]] bool mapped() const { return !view_.empty(); }

  // True when [offset, offset + length) lies inside the source (no overflow possible).
  [[nodiscard]] bool contains(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }

  // The bytes [offset, offset + length): a span of the map, or of `scratch` after a copy.
  // Without a map, length must fit in scratch.
  [[nodiscard]] Result<std::span<const std::byte>> bytes(uint64_t offset, size_t length,
                                                         std::span<std::byte> scratch) const;

  // Copies [offset, offset + out.size()) into out. Metadata (inline file tails) comes from the
  // map when there is one; file data always goes through ByteSource::read_exact.
  Status copy_metadata(uint64_t offset, std::span<std::byte> out) const;
  Status copy_data(uint64_t offset, std::span<std::byte> out) const;

  // The EIO error for a range outside the source (built only on the failure path).
  [[nodiscard]] Error out_of_range(uint64_t offset, uint64_t length) const;

 private:
  std::shared_ptr<const ByteSource> source_;
  std::span<const std::byte> view_;
  uint64_t size_;
};

}  // namespace ferry::erofs
