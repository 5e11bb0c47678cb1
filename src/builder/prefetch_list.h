// The prefetch list of an image (`ferry-image create --prefetch-files FILE`): the files a
// container is expected to read first, as runs of chunk records that ferryd fetches in the
// background before anyone asks (docs/image-format.md §5.1).
//
// Paths name files or directories of the merged tree ("/usr/bin/sh" or "usr/bin/sh"; a directory
// stands for every regular file below it, in name order). Symlinks are not followed: the list
// is about bytes, and a symlink's target is listed by its own path. A path not in the image, or
// naming a symlink or device, is an error naming it; nothing is resolved then. Each chunk is
// listed once, where it first appears; holes are skipped; neighbouring chunks of one blob merge
// into one range.
#pragma once

#include <string>
#include <vector>

#include "builder/tree.h"
#include "common/result.h"
#include "erofs/chunk_table.h"

namespace ferry::builder {

Result<std::vector<erofs::PrefetchRange>> resolve_prefetch(const Tree& tree, const erofs::ChunkTable& table,
                                                           const std::vector<std::string>& paths);

// Reads a prefetch file: one path per line; blank lines and lines starting with '#' are skipped.
Result<std::vector<std::string>> read_prefetch_file(const std::string& path);

}  // namespace ferry::builder
