// MemorySource: a ByteSource over bytes in memory, for unit tests and fuzz targets of the layers
// that read through ByteSource (erofs, imagefs).
//
// It owns an exactly-sized copy of the bytes (so AddressSanitizer sees a read one byte past the
// end), serves read_exact() from it and, when `mapped`, also offers them as view(), so both paths
// of a reader (mapped metadata, pread data) can be driven. Immutable after construction: safe for
// concurrent reads. A read past the end is EIO naming the source, as the ByteSource contract says.
#pragma once

#include <cerrno>
#include <cstddef>
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
  MemorySource(std::vector<std::byte> bytes, bool mapped, std::string name)
      : bytes_(std::move(bytes)), mapped_(mapped), name_(std::move(name)) {}
  MemorySource(std::string_view bytes, bool mapped, std::string name)
      : MemorySource(copy(bytes), mapped, std::move(name)) {}

  [[nodiscard]] uint64_t size() const override { return bytes_.size(); }
  Status read_exact(uint64_t offset, std::span<std::byte> out) const override {
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset) {
      return Error{EIO, "read past the end of " + name_};
    }
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return {};
  }
  [[nodiscard]] std::span<const std::byte> view() const override {
    return mapped_ ? std::span<const std::byte>(bytes_) : std::span<const std::byte>{};
  }
  [[nodiscard]] const std::string& name() const override { return name_; }

 private:
  static std::vector<std::byte> copy(std::string_view s) {
    std::vector<std::byte> v(s.size());
    if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());
    return v;
  }

  std::vector<std::byte> bytes_;
  bool mapped_;
  std::string name_;
};

}  // namespace ferry::testkit
