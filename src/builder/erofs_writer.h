// The bootstrap writer: turns a merged Tree into the bytes of an EROFS image whose regular files
// are chunk-based with their chunks on extra devices, plus the Ferry header and chunk table
// (docs/image-format.md §3). Our own writer, checked against the kernel's erofs and fsck.erofs.
//
// Pure: no I/O, the whole image is built in memory (metadata only; file data lives in blobs).
// Errors (an xattr EROFS cannot hold, limits of the format) are EINVAL/EFBIG naming the path.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "builder/tree.h"
#include "common/result.h"

namespace ferry::builder {

struct BootstrapDevice {
  std::string tag;  // the blob's sha256 hex
  uint32_t blocks = 0;
};

struct BootstrapSpec {
  const Node* root = nullptr;
  std::vector<BootstrapDevice> devices;    // device id = index + 1
  uint32_t chunk_size = 1U << 20U;         // a power of two, 4 KiB .. 64 MiB
  std::span<const std::byte> chunk_table;  // encoded table; empty: no Ferry header
  std::array<uint8_t, 16> uuid{};
};

struct Bootstrap {
  std::vector<std::byte> bytes;
  uint64_t inodes = 0;
  uint64_t table_offset = 0;  // 0 without a table
};

Result<Bootstrap> write_bootstrap(const BootstrapSpec& spec);

// How EROFS stores an xattr name: its prefix index and the suffix after the prefix; nullopt
// for a name EROFS has no prefix for (or an empty suffix where one is needed).
std::optional<std::pair<uint8_t, std::string_view>> xattr_name_index(std::string_view name);

}  // namespace ferry::builder
