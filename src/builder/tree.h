// Tree: the merged file tree of an image's layers, built entry by entry the way containerd's
// overlayfs unpack applies tar layers (docs/image-format.md §2): replacing, whiteouts, opaque
// directories, hard links. It knows nothing of tar or EROFS: the layer reader feeds it, the
// bootstrap writer reads it.
//
// Paths given to Tree are already split and checked (split_entry_path). Errors (a parent that is
// not a directory, a hard link to nothing) are Error{EINVAL, ...} naming the path; a failed call
// changes nothing. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace ferry::builder {

// Where one chunk of a file lives: a device (blob, 1-based) and block address, or a hole.
struct ChunkRef {
  uint16_t device_id = 0;
  uint32_t blkaddr = 0xFFFFFFFF;  // format::kNullAddr: a hole of zeros
};

struct Node;

// A directory entry: the node it names and the layer that wrote the name (for opaque dirs).
struct Dirent {
  std::shared_ptr<Node> node;
  uint32_t layer = 0;
};

struct Node {
  uint32_t mode = 0;  // st_mode: type and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime = 0;
  uint32_t mtime_nsec = 0;
  uint32_t rdev_major = 0;
  uint32_t rdev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;  // full names, in entry order
  uint64_t size = 0;                                        // regular files
  std::vector<ChunkRef> chunks;                             // regular files
  std::string link_target;                                  // symlinks
  std::map<std::string, Dirent> children;                   // directories, sorted bytewise

  [[nodiscard]] bool is_dir() const;
};

// An entry name split into components: no empty, "." or ".." parts; "" (the root) is no parts.
using PathParts = std::vector<std::string>;

// Splits a tar entry name: drops "./" and "/" separators and "." components. Absolute names and
// ".." components are refused (EINVAL "... escapes the image root"), as are components longer
// than 255 bytes.
Result<PathParts> split_entry_path(std::string_view name);
std::string join_path(const PathParts& parts);

class Tree {
 public:
  Tree();

  // Adds `node` at `path` in `layer`: over an existing directory a directory keeps the children
  // and takes the new attributes; anything else replaces what was there. Symlinks among the
  // parents are followed inside the image; missing parents are created (0755, 0:0, the node's
  // mtime). `path` empty: the root's attributes (a directory only).
  Status add(const PathParts& path, std::shared_ptr<Node> node, uint32_t layer);
  // Names the existing non-directory at `target` also at `path` (replacing what was there).
  Status link(const PathParts& path, const PathParts& target, uint32_t layer);
  // Removes `path` and everything below it; a missing path is ignored.
  Status whiteout(const PathParts& path);
  // Removes from directory `dir` every name that an earlier layer wrote, recursively inside
  // directories this layer re-declared.
  Status opaque(const PathParts& dir, uint32_t layer);

  [[nodiscard]] const Node& root() const { return *root_; }

 private:
  // The directory holding path's last component, following symlinks among the parents within
  // the image, creating missing parents when asked (else nullptr when one is missing).
  Result<Node*> parent_of(const PathParts& path, bool create, const Node* attrs_for_created, uint32_t layer);

  std::shared_ptr<Node> root_;
};

}  // namespace ferry::builder
