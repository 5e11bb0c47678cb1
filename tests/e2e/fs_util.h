// Small POSIX helpers shared by the e2e tree builder, the tree comparator and the fixtures
// (files are owned by common/unique_fd.h's UniqueFd): a seeded deterministic PRNG, and formatting of paths and errno
// values for human-readable difference reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/unique_fd.h"

namespace ferry::e2e {

// xoshiro256** seeded through splitmix64: fast, deterministic across platforms for a seed.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  // Uniform in [0, n); n == 0 yields 0.
  uint64_t below(uint64_t n);
  // Uniform in [lo, hi] (inclusive).
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  // True with probability num/den.
  bool chance(uint64_t num, uint64_t den) { return below(den) < num; }
  void fill(void* data, size_t len);
  std::string bytes(size_t len);
  // Lower-case alphanumerics.
  std::string word(size_t len);

 private:
  uint64_t s_[4];
};

// strerror text plus the symbolic value, e.g. "No such file or directory (errno 2)".
std::string errno_text(int err);

// Escapes control characters, backslashes and non-ASCII bytes (\xNN) so a name is unambiguous
// in a report, and shortens it in the middle beyond `max` characters.
std::string printable(std::string_view s, size_t max = 160);

// Quotes `s` for /bin/sh.
std::string shell_quote(std::string_view s);

// Reads a whole (small) file; returns false on error.
bool read_text_file(const std::string& path, std::string* out);

// Writes `content` to `path` (truncating); throws std::runtime_error on failure.
void write_text_file(const std::string& path, std::string_view content);

// One O_DIRECT pread of 4 KiB at `offset` (a single FUSE READ, past the page cache): 0 or the
// errno; the bytes read into `data` when given.
int direct_read(const std::string& path, uint64_t offset, std::string* data = nullptr);

}  // namespace ferry::e2e
