#include "oci/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

namespace ferry::oci {

Result<std::string> read_file_bounded(const std::string& path, size_t max_size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("opening " + path);
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("reading " + path);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_size) {
      return Error{EFBIG, path + ": larger than " + std::to_string(max_size) + " bytes"};
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status write_all(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("write");
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

Result<TempFile> TempFile::beside(const std::string& target) {
  std::string pattern = target + ".tmp-XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  UniqueFd fd(::mkostemp(name.data(), O_CLOEXEC));
  if (!fd) return errno_error("creating a temporary file next to " + target);
  return TempFile(std::move(fd), std::string(name.data()));
}

TempFile::TempFile(TempFile&& other) noexcept : fd_(std::move(other.fd_)), path_(std::move(other.path_)) {
  other.path_.clear();
}

TempFile::~TempFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

Status TempFile::commit(const std::string& target, mode_t mode) {
  if (::fchmod(fd_.get(), mode) != 0 || ::fsync(fd_.get()) != 0) return errno_error("syncing " + path_);
  fd_.reset();
  if (::rename(path_.c_str(), target.c_str()) != 0) return errno_error("renaming " + path_ + " to " + target);
  path_.clear();
  return {};
}

Status write_file_atomic(const std::string& path, std::string_view bytes, mode_t mode) {
  FERRY_ASSIGN(TempFile tmp, TempFile::beside(path));
  if (auto st = write_all(tmp.fd(), bytes.data(), bytes.size()); !st) return std::move(st).error().context(tmp.path());
  return tmp.commit(path, mode);
}

Result<FileDigest> digest_fd(int in_fd, int copy_to) {
  Sha256 h;
  FileDigest out;
  std::vector<char> buf(1 << 20);
  while (true) {
    const ssize_t n = ::read(in_fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read");
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    out.size += n;
    if (copy_to >= 0) FERRY_TRY(write_all(copy_to, buf.data(), static_cast<size_t>(n)));
  }
  out.digest = h.finish();
  return out;
}

Result<FileDigest> digest_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("opening " + path);
  auto d = digest_fd(fd.get());
  if (!d) return std::move(d).error().context(path);
  return d;
}

}  // namespace ferry::oci
