// Builds, at test time and deterministically from a seed, a source tree full of the corner cases an
// EROFS image (and a FUSE server reading it) must reproduce exactly: 40-level paths, a 20,000-entry
// directory, 254-byte and non-UTF-8/UTF-8 names, every file type (symlinks up to 4095-byte targets,
// hard-link groups, char/block devices, fifos, sockets), shared and large xattrs, sparse files,
// sizes around block and chunk boundaries, a large random file, odd modes, owners and ns mtimes.
// Must run as root (mknod, chown, trusted.* xattrs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ferry::e2e {

struct TreeSpec {
  uint64_t seed = 0x0F3E'22C0'FFEE'2024ULL;
  int deep_levels = 40;
  int big_dir_entries = 20000;
  uint64_t large_file_size = 64ULL << 20;
  uint64_t sparse_file_size = 3ULL << 20;

  // The full tree the kernel comparisons use.
  static TreeSpec full() { return {}; }
  // A cheap tree with every kind of entry, for comparator self-tests.
  static TreeSpec small() {
    TreeSpec s;
    s.big_dir_entries = 300;
    s.large_file_size = (2ULL << 20) + 12345;
    s.sparse_file_size = 2ULL << 20;
    return s;
  }
};

struct TreeStats {
  size_t entries = 0;  // every path including the root itself
  size_t directories = 0;
  size_t regular_files = 0;  // names, hard links counted once per name
  size_t symlinks = 0;
  size_t specials = 0;          // char/block devices, fifos, sockets
  size_t extra_hard_links = 0;  // names beyond the first of each hard-linked inode
  uint64_t content_bytes = 0;   // apparent bytes of regular-file inodes (each inode once)
};

// Creates the tree at `root` (created, must not exist yet). Throws std::runtime_error on failure.
TreeStats build_tree(const std::string& root, const TreeSpec& spec);

// Well-known paths inside the tree, used by tests that mutate a copy.
namespace tree_paths {
inline constexpr const char* kBoundaryFile = "sizes/size_65537";
inline constexpr const char* kSmallXattrFile = "xattrs/x_small";
inline constexpr const char* kModeFile = "modes/m0644";
inline constexpr const char* kSymlink = "links/relative_file";
inline constexpr const char* kHardPairA = "hardlinks/pair_a";
inline constexpr const char* kHardPairB = "hardlinks/pair_b";
inline constexpr const char* kCharDevice = "special/chr_null";
inline constexpr const char* kFifo = "special/fifo";
inline constexpr const char* kBigDir = "bigdir";
inline constexpr const char* kLargeFile = "large/random";
}  // namespace tree_paths

}  // namespace ferry::e2e
