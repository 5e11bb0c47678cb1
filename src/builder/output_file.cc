#include "builder/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <utility>

namespace ferry::builder {

Result<OutputFile> OutputFile::create(const std::string& dir, const std::string& what) {
  OutputFile f;
  std::string pattern = (dir.empty() ? std::string(".") : dir) + "/.ferry-tmp-XXXXXX";
  int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
  if (fd < 0) return errno_error("cannot create a temporary file for " + what + " in '" + dir + "'");
  f.fd_ = UniqueFd(fd);
  f.temp_ = pattern;
  f.what_ = what;
  // mkstemp makes 0600; images are meant to be read by others, like any file made with umask.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) return errno_error("cannot set the mode of '" + pattern + "'");
  return f;
}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : fd_(std::move(other.fd_)),
      temp_(std::exchange(other.temp_, {})),
      what_(std::move(other.what_)),
      size_(other.size_) {}

OutputFile& OutputFile::operator=(OutputFile&& other) noexcept {
  if (this != &other) {
    discard();
    fd_ = std::move(other.fd_);
    temp_ = std::exchange(other.temp_, {});
    what_ = std::move(other.what_);
    size_ = other.size_;
  }
  return *this;
}

OutputFile::~OutputFile() {
  discard();
}

void OutputFile::discard() {
  if (!temp_.empty()) ::unlink(temp_.c_str());
  temp_.clear();
  fd_.reset();
}

Status OutputFile::write(std::span<const std::byte> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd_.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot write " + what_ + " ('" + temp_ + "')");
    }
    done += static_cast<size_t>(n);
  }
  size_ += data.size();
  return {};
}

Status OutputFile::commit(const std::string& final_path) {
  if (::fsync(fd_.get()) != 0) return errno_error("cannot flush " + what_ + " ('" + temp_ + "')");
  if (::rename(temp_.c_str(), final_path.c_str()) != 0) {
    return errno_error("cannot rename '" + temp_ + "' to '" + final_path + "'");
  }
  temp_.clear();
  fd_.reset();
  return {};
}

}  // namespace ferry::builder
