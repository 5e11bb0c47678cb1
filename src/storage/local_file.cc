#include "storage/local_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ferry::storage {

LocalFile::LocalFile(Key /*unused*/, std::string path, UniqueFd fd, uint64_t size)
    : path_(std::move(path)), fd_(std::move(fd)), size_(size) {}

LocalFile::~LocalFile() {
  if (map_ != nullptr) ::munmap(map_, size_);
}

Result<std::shared_ptr<LocalFile>> LocalFile::open(const std::string& path, bool map) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("cannot open '" + path + "'");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat '" + path + "'");
  if (!S_ISREG(st.st_mode)) return Error{EINVAL, "'" + path + "' is not a regular file"};
  auto file = std::make_shared<LocalFile>(Key{}, path, std::move(fd), static_cast<uint64_t>(st.st_size));
  if (map && file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_SHARED, file->fd_.get(), 0);
    if (p == MAP_FAILED) return errno_error("cannot map '" + path + "'");
    file->map_ = p;
  }
  return file;
}

std::span<const std::byte> LocalFile::view() const {
  if (map_ == nullptr) return {};
  return {static_cast<const std::byte*>(map_), size_};
}

Status LocalFile::read_exact(uint64_t offset, std::span<std::byte> out) const {
  if (offset > size_ || out.size() > size_ - offset) {
    return Error{EIO, "read of " + std::to_string(out.size()) + " bytes at " + std::to_string(offset) +
                          " is past the end of '" + path_ + "' (" + std::to_string(size_) + " bytes)"};
  }
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read of '" + path_ + "' failed");
    }
    if (n == 0) return Error{EIO, "'" + path_ + "' shrank while open"};
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace ferry::storage
