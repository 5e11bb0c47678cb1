// Sample images built at test time: a seeded tree of regular files packed by mkfs.erofs into a
// bootstrap whose file data lives in a blob device (64 KiB chunks, the localfs backend), as
// Nydus RAFS v6 images are. The tree stays on disk: it is the truth readers compare with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace ferry::testkit {

struct SampleSpec {
  int files = 24;  // regular files d<i % dirs>/f<i>, sizes spread from 0 to max_size
  int dirs = 7;
  size_t max_size = size_t{3} << 20;
  uint64_t seed = 1;
  // Files of exact sizes at the given relative paths (what a benchmark's reader reads).
  std::vector<std::pair<std::string, size_t>> named;
  // Empty: mkfs.erofs packs the tree (above). Else a Ferry image: the tree, made of bytes that
  // compress, is packed by tar and converted by `ferry-image create --compressor COMPRESSOR`
  // (1 MiB chunks); meta is the bootstrap (dir/<name>.boot), blob the blob directory
  // (dir/<name>-blobs), the config localfs {"dir": blob}.
  std::string compressor;
};

struct SampleImage {
  std::string tree;                // dir/<name>-tree: the source directory
  std::string meta;                // dir/<name>.erofs: the bootstrap
  std::string blob;                // dir/<name>.blob: the blob device
  std::string config;              // nydusd config JSON text naming the blob (localfs, blob_file)
  std::string config_path;         // dir/<name>.json holding `config`
  std::vector<std::string> files;  // relative paths of every regular file
  std::vector<std::string> named;  // relative paths of the spec's named files
  uint64_t bytes = 0;              // total file size
};

// Builds dir/<name>-tree from `spec` and packs it; fails with mkfs.erofs's output when it fails.
Result<SampleImage> make_sample_image(const std::string& dir, const std::string& name,
                                      const SampleSpec& spec);
// For tests: `files` files, seeded; throws std::runtime_error on failure.
SampleImage make_sample_image(const std::string& dir, const std::string& name, int files, uint64_t seed);
// The same as a Ferry image compressed with `compressor` (see SampleSpec::compressor).
SampleImage make_ferry_sample_image(const std::string& dir, const std::string& name, int files, uint64_t seed,
                                    const std::string& compressor);

// Reproducible pseudo-random numbers and bytes (splitmix64).
uint64_t splitmix64(uint64_t& state);
std::string random_bytes(size_t size, uint64_t seed);

}  // namespace ferry::testkit
