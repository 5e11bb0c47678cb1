// MemorySource: a ByteSource over bytes in memory that it does not own (a fuzz input, a buffer a
// test or a writer built). The bytes must outlive it and not change; reads are memcpy, safe from
// many threads; view() offers the bytes in place when `mapped`.
#pragma once

#include <cstring>
#include <span>
#include <string>

#include "common/byte_source.h"

namespace ferry {

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::span<const std::byte> bytes, std::string name, bool mapped = true)
      : bytes_(bytes), name_(std::move(name)), mapped_(mapped) {}
  [[nodiscard]] uint64_t size() const override { return bytes_.size(); }
  Status read_exact(uint64_t offset, std::span<std::byte> out) const override {
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset) {
      return Error{EIO, "read of " + std::to_string(out.size()) + " bytes at " + std::to_string(offset) +
                            " is past the end of " + name_ + " (" + std::to_string(bytes_.size()) +
                            " bytes)"};
    }
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return {};
  }
  [[nodiscard]] std::span<const std::byte> view() const override {
    return mapped_ ? bytes_ : std::span<const std::byte>{};
  }
  [[nodiscard]] const std::string& name() const override { return name_; }

 private:
  std::span<const std::byte> bytes_;
  std::string name_;
  bool mapped_;
};

}  // namespace ferry
