// Compares two directory trees entry by entry (lstat, never following symlinks) and reports every
// difference in human-readable form: path sets, types, modes, owners, sizes, ns mtimes, nlink, rdev,
// symlink targets, xattrs, every content byte, hard-link groups, readdir d_type and dot entries,
// plus seeded random-offset preads across block/chunk boundaries and EOF, and O_DIRECT reads.
// Used to prove a FUSE mount serves exactly what the kernel's EROFS driver serves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ferry::e2e {

struct CompareOptions {
  // Relaxations, for comparing a kernel EROFS mount with its SOURCE tree only. The kernel-vs-ferryd
  // comparison uses strict() and relaxes nothing.
  bool ignore_dir_size = false;  // EROFS directory sizes are its own dirent blocks
  bool ignore_dir_nlink = false;
  bool ignore_dir_mtime = false;
  bool ignore_root_mtime = false;  // containerd never applies a layer's "./" entry to the root
  bool ignore_mtime = false;       // images built with -T (fixed timestamp)
  bool ignore_dot_entries = false;

  size_t max_differences = 50;  // the report keeps the first N (all are counted)
  uint64_t seed = 0x5EED'0FC0'4DA3ULL;
  int random_reads_per_file = 4;        // for files < 1 MiB
  int random_reads_large_file = 200;    // for files >= 1 MiB
  size_t max_random_read_files = 1500;  // spread evenly over all regular files
  int direct_io_files = 6;

  static CompareOptions strict() { return {}; }
  // Kernel EROFS mount vs. the tree it was built from.
  static CompareOptions erofs_vs_source() {
    CompareOptions o;
    o.ignore_dir_size = true;
    return o;
  }
};

struct CompareResult {
  std::vector<std::string> differences;  // the first max_differences, "path: what: A=.. B=.."
  size_t total_differences = 0;
  size_t entries = 0;  // paths seen in tree A
  size_t regular_files = 0;
  uint64_t bytes_compared = 0;
  size_t random_reads = 0;
  size_t direct_reads = 0;
  // Wall time of the phases, in milliseconds.
  long long scan_ms = 0;
  long long content_ms = 0;
  long long reads_ms = 0;  // random and O_DIRECT reads

  [[nodiscard]] bool ok() const { return total_differences == 0; }
  // Every difference on its own line, then a count of those left out and the summary.
  [[nodiscard]] std::string report() const;
  // One line: how many differences, and how much was compared.
  [[nodiscard]] std::string summary() const;
};

// Compares the trees rooted at `a` and `b`. Never throws for filesystem errors: an error on one
// side is itself reported as a difference (e.g. "read failed: Input/output error").
CompareResult compare_trees(const std::string& a, const std::string& b, const CompareOptions& options);

}  // namespace ferry::e2e
