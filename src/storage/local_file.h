// LocalFile: a ByteSource over a local, immutable file (an image's metadata or a blob).
//
// The file is opened read-only once; reads are pread(2) calls, safe from many threads.
// With map = true the file is also memory-mapped so that metadata is decoded in place
// without a syscall per access. Images must not be modified while open (they are content-
// addressed and immutable on a container host); a file truncated under a mapping would fault.
#pragma once

#include <memory>
#include <string>

#include "common/byte_source.h"
#include "common/unique_fd.h"

namespace ferry::storage {

class LocalFile final : public ByteSource {
 public:
  // Opens path; errors name the path and the reason (missing, unreadable, not a regular file).
  static Result<std::shared_ptr<LocalFile>> open(const std::string& path, bool map);

  struct Key {  // restricts construction to open()
    explicit Key() = default;
  };
  LocalFile(Key, std::string path, UniqueFd fd, uint64_t size);
  LocalFile(const LocalFile&) = delete;
  LocalFile& operator=(const LocalFile&) = delete;
  ~LocalFile() override;

  [[nodiscard]] uint64_t size() const override { return size_; }
  Status read_exact(uint64_t offset, std::span<std::byte> out) const override;
  [[nodiscard]] std::span<const std::byte> view() const override;
  [[nodiscard]] const std::string& name() const override { return path_; }

 private:
  std::string path_;
  UniqueFd fd_;
  uint64_t size_;
  void* map_ = nullptr;
};

}  // namespace ferry::storage
