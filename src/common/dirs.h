// Creating directory trees: the one `mkdir -p` of the tree.
//
// Thread-safety: a pure function of the filesystem (concurrent callers creating the same tree
// both succeed).
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace ferry {

// Creates `path` and its missing parents with `mode` (as umask allows); directories that exist
// keep their mode (an administrator may have chosen it). An empty path is nothing to do.
// Errors: ENOTDIR naming the part that exists and is not a directory; the mkdir(2) errno
// naming the directory it could not create.
Status make_dirs(const std::string& path, mode_t mode = 0700);

}  // namespace ferry
