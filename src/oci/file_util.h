// Small POSIX file helpers of the oci library (layout, credentials, blob downloads): bounded
// whole-file reads, temp files committed by rename (a reader sees the old file or the new
// one, never a torn one; a failure leaves nothing behind) and streaming sha256.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/unique_fd.h"
#include "oci/digest.h"

namespace ferry::oci {

// The whole file; EFBIG if larger than max_size; the errno of open/read otherwise.
Result<std::string> read_file_bounded(const std::string& path, size_t max_size);

// Writes all of it (retrying short writes and EINTR).
Status write_all(int fd, const void* data, size_t size);

// A temporary file beside `target` ("TARGET.tmp-XXXXXX"), removed on destruction unless
// committed. Move-only.
class TempFile {
 public:
  static Result<TempFile> beside(const std::string& target);
  TempFile(TempFile&& other) noexcept;
  TempFile& operator=(TempFile&&) = delete;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const std::string& path() const { return path_; }
  // chmod, fsync, close, rename onto `target`.
  Status commit(const std::string& target, mode_t mode = 0644);

 private:
  TempFile(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;  // empty once committed or moved from
};

// Writes `bytes` to `path` through a TempFile.
Status write_file_atomic(const std::string& path, std::string_view bytes, mode_t mode = 0644);

struct FileDigest {
  Digest digest;
  int64_t size = 0;
};
// Reads `in_fd` to its end, hashing; copies every byte to `copy_to` when it is >= 0.
Result<FileDigest> digest_fd(int in_fd, int copy_to = -1);
Result<FileDigest> digest_file(const std::string& path);

}  // namespace ferry::oci
