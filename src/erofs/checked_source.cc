#include "erofs/checked_source.h"

#include <cstring>
#include <utility>

namespace ferry::erofs {

CheckedSource::CheckedSource(std::shared_ptr<const ByteSource> source)
    : source_(std::move(source)), view_(source_->view()), size_(source_->size()) {
  // A view that disagrees with size() would defeat the bounds checks; fall back to reads.
  if (view_.size() != size_) view_ = {};
}

Error CheckedSource::out_of_range(uint64_t offset, uint64_t length) const {
  return Error{EIO, std::to_string(length) + " bytes at offset " + std::to_string(offset) +
                        " lie past the end of '" + name() + "' (" + std::to_string(size_) + " bytes)"};
}

Result<std::span<const std::byte>> CheckedSource::bytes(uint64_t offset, size_t length,
                                                        std::span<std::byte> scratch) const {
  if (!contains(offset, length)) return out_of_range(offset, length);
  if (!view_.empty()) return view_.subspan(offset, length);
  if (length > scratch.size()) {
    return Error{EIO, "internal error: " + std::to_string(length) + "-byte metadata read from '" + name() +
                          "' exceeds its " + std::to_string(scratch.size()) + "-byte buffer"};
  }
  auto out = scratch.first(length);
  FERRY_TRY(source_->read_exact(offset, out));
  return std::span<const std::byte>(out);
}

Status CheckedSource::copy_metadata(uint64_t offset, std::span<std::byte> out) const {
  if (!contains(offset, out.size())) return out_of_range(offset, out.size());
  if (view_.empty()) return source_->read_exact(offset, out);
  if (!out.empty()) std::memcpy(out.data(), view_.data() + offset, out.size());
  return {};
}

Status CheckedSource::copy_data(uint64_t offset, std::span<std::byte> out) const {
  if (!contains(offset, out.size())) return out_of_range(offset, out.size());
  if (out.empty()) return {};
  return source_->read_exact(offset, out);
}

}  // namespace ferry::erofs
