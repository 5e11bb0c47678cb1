// Opening a bootstrap for inspect and check: the EROFS image (with stand-ins for the blob
// devices, which these commands read themselves), its chunk table, and the two cross-checked.
#pragma once

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

}  // namespace ferry::image_tool
