// Opening a bootstrap for inspect and check: the EROFS image (with stand-ins for the blob
// devices, which these commands read themselves), its chunk table, and the two cross-checked.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "erofs/chunk_table.h"
#include "erofs/erofs_image.h"

namespace ferry::image_tool {

struct BootstrapView {
  std::shared_ptr<const ByteSource> file;
  std::shared_ptr<const erofs::ErofsImage> image;
  std::optional<erofs::ChunkTable> table;  // absent: not a Ferry image (a plain EROFS image)
};

Result<BootstrapView> open_bootstrap(const std::string& path);

// Visits every entry below the root (path "/a/b"), depth first in directory order.
Status walk_tree(const erofs::ErofsImage& image,
                 const std::function<Status(const std::string&, const erofs::Inode&)>& visit);

// How the files use the stored chunks. Every chunk index must name the start of a chunk of the
// table (EIO naming the file otherwise).
struct ChunkReferences {
  uint64_t files = 0;
  uint64_t refs = 0;       // chunk indexes that are not holes
  uint64_t ref_bytes = 0;  // their uncompressed bytes
  uint64_t holes = 0;
  uint64_t chunks_used = 0;  // distinct chunks referenced
  uint64_t dedup_saved = 0;  // bytes referenced again instead of stored
};
Result<ChunkReferences> count_references(const erofs::ErofsImage& image, const erofs::ChunkTable& table);

}  // namespace ferry::image_tool
