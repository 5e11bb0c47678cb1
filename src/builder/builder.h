// build_image: OCI tar layers in, a Ferry image out (docs/image-format.md): the merged tree as an
// EROFS bootstrap, the data as chunked, deduplicated, compressed blobs named by their sha256,
// the chunk table in the bootstrap. This is the library behind `ferry-image create` and
// `ferry-image convert`.
//
// All or nothing: outputs are written under temporary names and renamed at the very end; on any
// error nothing new is left in the blob directory or at the bootstrap path, and the Error says
// what failed (for layer problems: "layer N (NAME): entry 'PATH': what"). Not thread-safe; run
// one build per object graph (no global state, so separate builds may run in parallel).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "builder/blob_store.h"
#include "builder/layer_reader.h"
#include "common/result.h"
#include "erofs/chunk_table.h"

namespace ferry::builder {

inline constexpr uint32_t kDefaultChunkSize = 1U << 20U;

struct BuildOptions {
  std::string bootstrap;  // output path
  std::string blob_dir;   // blobs go to blob_dir/<sha256 hex>; must exist
  erofs::Compression compressor = erofs::Compression::kZstd;
  uint32_t chunk_size = kDefaultChunkSize;  // a power of two, 4 KiB .. 64 MiB
  std::vector<LayerSource> layers;          // lowest first
  // Files or directories of the merged tree whose chunks ferryd fetches ahead of demand, in
  // this order (builder/prefetch_list.h); empty: no prefetch list.
  std::vector<std::string> prefetch_paths;
};

struct BuildSummary {
  std::string bootstrap;
  uint64_t bootstrap_size = 0;
  uint64_t inodes = 0;
  uint64_t entries = 0;     // tar entries read
  uint64_t file_bytes = 0;  // regular-file bytes read from the layers
  erofs::Compression compressor = erofs::Compression::kZstd;
  uint32_t chunk_size = 0;
  uint64_t prefetch_chunks = 0;   // chunks in the prefetch list
  std::vector<BlobResult> blobs;  // in device order
  BlobStats stats;
};

Result<BuildSummary> build_image(const BuildOptions& options);

}  // namespace ferry::builder
