// Reading one tar layer (plain, gzip or zstd; detected from the bytes) into the merged Tree,
// its file data into the BlobStore. libarchive parses tar, PAX and GNU extensions and
// decompresses; everything it hands over is still untrusted (names, links, sizes).
//
// Errors are one line naming the layer and the entry: "layer 2 (a.tar.gz): entry 'x/../y':
// path ... escapes the image root". Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "builder/blob_store.h"
#include "builder/tree.h"
#include "common/result.h"

namespace ferry::builder {

struct LayerSource {
  std::string name;  // for messages (a path)
  // Either a file to open, or bytes in memory (the fuzzer, tests).
  std::string path;
  std::span<const std::byte> bytes;
  // Refuse the layer once its regular files hold more bytes than this (0: no limit); bounds the
  // work a small input can ask for (a sparse file claiming terabytes), e.g. in the fuzzer.
  uint64_t max_file_bytes = 0;
};

struct LayerStats {
  uint64_t entries = 0;
  uint64_t file_bytes = 0;  // of regular files
};

// Applies layer `layer` (0-based, lowest first) to `tree`.
Result<LayerStats> apply_layer(const LayerSource& source, uint32_t layer, Tree& tree, BlobStore& blobs);

}  // namespace ferry::builder
