// OutputFile: a file written under a temporary name next to its destination and renamed into
// place only by commit(), so that a failed build leaves nothing behind (docs: "no output file
// left"). Destruction without commit() unlinks the temporary. Not thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace ferry::builder {

class OutputFile {
 public:
  // Creates a temporary file in `dir` (mode 0644 after umask) for the final name set later.
  static Result<OutputFile> create(const std::string& dir, const std::string& what);
  OutputFile() = default;
  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&& other) noexcept;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile();

  Status write(std::span<const std::byte> data);
  [[nodiscard]] uint64_t size() const { return size_; }
  [[nodiscard]] const std::string& temp_path() const { return temp_; }
  // Flushes to disk and renames the temporary to `final_path` (same filesystem).
  Status commit(const std::string& final_path);

 private:
  void discard();
  UniqueFd fd_;
  std::string temp_;
  std::string what_;
  uint64_t size_ = 0;
};

}  // namespace ferry::builder
