// MemorySource: a ByteSource over bytes held in memory, for unit tests and fuzz targets of the
// layers that read through ByteSource (erofs, imagefs, storage).
//
// It owns an exactly-sized copy of the bytes (so AddressSanitizer sees a read one byte past the
// end) and serves read_exact() from it; when `viewable` it also offers them as view(), like a
// mapped file, so both paths of a reader (mapped metadata, pread data) can be driven. A failure
// can be injected: every read that touches [fail_from, fail_to) answers EIO, as a failing disk
// would. A read past the end is EIO naming the source, as the ByteSource contract says.
//
// Thread-safety: read_exact()/view() from many threads; fail_range() and bytes() while nobody
// reads.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/byte_source.h"

namespace ferry::testkit {

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::vector<std::byte> bytes, std::string name, bool viewable = true)
      : bytes_(std::move(bytes)), name_(std::move(name)), viewable_(viewable) {}
  MemorySource(std::string_view bytes, std::string name, bool viewable = true)
      : MemorySource(copy(std::as_bytes(std::span(bytes))), std::move(name), viewable) {}
  MemorySource(std::span<const std::byte> bytes, std::string name, bool viewable = true)
      : MemorySource(copy(bytes), std::move(name), viewable) {}

  [[nodiscard]] uint64_t size() const override { return bytes_.size(); }
  Status read_exact(uint64_t offset, std::span<std::byte> out) const override {
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset) {
      return Error{EIO, name_ + ": read of " + std::to_string(out.size()) + " bytes at " +
                            std::to_string(offset) + " is past its end"};
    }
    if (offset < fail_to_ && offset + out.size() > fail_from_) {
      return Error{EIO, name_ + ": injected read failure at " + std::to_string(offset)};
    }
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return {};
  }
  [[nodiscard]] std::span<const std::byte> view() const override {
    if (!viewable_) return {};
    return bytes_;
  }
  [[nodiscard]] const std::string& name() const override { return name_; }

  // Reads touching [from, to) fail with EIO from now on (only through read_exact: a view
  // cannot fail, so failures are for sources that are not viewable).
  void fail_range(uint64_t from, uint64_t to) {
    fail_from_ = from;
    fail_to_ = to;
  }
  // The bytes themselves, to corrupt them on purpose.
  std::vector<std::byte>& bytes() { return bytes_; }

 private:
  static std::vector<std::byte> copy(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

  std::vector<std::byte> bytes_;
  std::string name_;
  bool viewable_;
  uint64_t fail_from_ = 0;
  uint64_t fail_to_ = 0;
};

}  // namespace ferry::testkit
