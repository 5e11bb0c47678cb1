#include "kit/sample_image.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "kit/process.h"

namespace ferry::testkit {
namespace fs = std::filesystem;

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string random_bytes(size_t size, uint64_t seed) {
  std::string data(size, '\0');
  for (size_t k = 0; k < size; k += 8) {
    uint64_t v = splitmix64(seed);
    std::memcpy(data.data() + k, &v, std::min<size_t>(8, size - k));
  }
  return data;
}

namespace {

// Small files, block multiples, and large ones up to `max`: every read path of a chunked image.
size_t pick_size(uint64_t& rng, size_t max) {
  if (max == 0) return 0;
  switch (splitmix64(rng) % 4) {
    case 0:
      return splitmix64(rng) % std::min<size_t>(5000, max);
    case 1:
      return std::min<size_t>(4096 * (1 + splitmix64(rng) % 40), max);
    case 2:
      return splitmix64(rng) % std::max<size_t>(max / 3, 1);
    default:
      return max / 3 + splitmix64(rng) % std::max<size_t>(max - max / 3, 1);
  }
}

// Bytes that compression shrinks: letters of a small alphabet at random.
std::string compressible_bytes(size_t size, uint64_t seed) {
  std::string data(size, '\0');
  for (size_t k = 0; k < size; k += 8) {
    uint64_t v = 0x6161616161616161ULL + (splitmix64(seed) & 0x0303030303030303ULL);
    std::memcpy(data.data() + k, &v, std::min<size_t>(8, size - k));
  }
  return data;
}

// Packs img.tree into a Ferry image with `ferry-image create` (the build's binary).
Status pack_ferry_image(SampleImage& img, const std::string& dir, const std::string& name,
                        const std::string& compressor) {
  img.meta = dir + "/" + name + ".boot";
  img.blob = dir + "/" + name + "-blobs";
  std::error_code ec;
  fs::create_directories(img.blob, ec);
  if (ec) return Error{ec.value(), "mkdir '" + img.blob + "': " + ec.message()};
  const std::string layer = dir + "/" + name + ".tar";
  const std::string log = dir + "/" + name + ".pack.log";
  FERRY_TRY(run_command({find_in_path("tar"), "--format=pax", "--numeric-owner", "-C", img.tree, "-cf", layer, "."},
                        log, std::chrono::seconds(120)));
  FERRY_TRY(run_command({binary_path("ferry-image"), "create", "--bootstrap", img.meta, "--blob-dir", img.blob,
                         "--compressor", compressor, "--chunk-size", "1048576", layer},
                        log, std::chrono::seconds(120)));
  img.config = R"({"device":{"backend":{"type":"localfs","config":{"dir":")" + img.blob + R"("}}}})";
  return {};
}

Status write_file(const SampleImage& img, const std::string& rel, const std::string& data) {
  fs::path p = fs::path(img.tree) / rel;
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  if (ec) return Error{ec.value(), "mkdir '" + p.parent_path().string() + "': " + ec.message()};
  std::ofstream out(p, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) return Error{EIO, "cannot write '" + p.string() + "'"};
  return {};
}

}  // namespace

Result<SampleImage> make_sample_image(const std::string& dir, const std::string& name,
                                      const SampleSpec& spec) {
  SampleImage img;
  img.tree = dir + "/" + name + "-tree";
  img.meta = dir + "/" + name + ".erofs";
  img.blob = dir + "/" + name + ".blob";
  img.config_path = dir + "/" + name + ".json";
  std::error_code ec;
  fs::create_directories(img.tree, ec);
  if (ec) return Error{ec.value(), "mkdir '" + img.tree + "': " + ec.message()};
  uint64_t rng = spec.seed;
  auto add = [&](const std::string& rel, size_t size) -> Status {
    const uint64_t file_seed = splitmix64(rng);
    FERRY_TRY(write_file(img, rel, spec.compressor.empty() ? random_bytes(size, file_seed)
                                                            : compressible_bytes(size, file_seed)));
    img.files.push_back(rel);
    img.bytes += size;
    return {};
  };
  for (int i = 0; i < spec.files; ++i) {
    size_t size = pick_size(rng, spec.max_size);
    // Appended piece by piece: `"d" + std::to_string(...)` trips g++ 12's -O3 -Wrestrict false
    // positive (GCC bug 105329), as in manager/config.cc's key_name.
    std::string rel = "d";
    rel += std::to_string(i % std::max(spec.dirs, 1));
    rel += "/f";
    rel += std::to_string(i);
    FERRY_TRY(add(rel, size));
  }
  for (const auto& [rel, size] : spec.named) {
    FERRY_TRY(add(rel, size));
    img.named.push_back(rel);
  }
  if (!spec.compressor.empty()) {
    FERRY_TRY(pack_ferry_image(img, dir, name, spec.compressor));
  } else {
    std::string mkfs = find_in_path("mkfs.erofs");
    if (mkfs.empty()) return Error{ENOENT, "mkfs.erofs not found in PATH (erofs-utils)"};
    FERRY_TRY(run_command({mkfs, "--quiet", "--chunksize=65536", "--blobdev=" + img.blob, img.meta, img.tree},
                          dir + "/" + name + ".mkfs.log", std::chrono::seconds(120)));
    img.config = R"({"device":{"backend":{"type":"localfs","config":{"blob_file":")" + img.blob + R"("}}}})";
  }
  std::ofstream out(img.config_path);
  out << img.config;
  if (!out) return Error{EIO, "cannot write '" + img.config_path + "'"};
  return img;
}

SampleImage make_sample_image(const std::string& dir, const std::string& name, int files, uint64_t seed) {
  SampleSpec spec;
  spec.files = files;
  spec.seed = seed;
  auto img = make_sample_image(dir, name, spec);
  if (!img.ok()) throw std::runtime_error("sample image '" + name + "': " + img.error().message);
  return std::move(*img);
}

SampleImage make_ferry_sample_image(const std::string& dir, const std::string& name, int files, uint64_t seed,
                                    const std::string& compressor) {
  SampleSpec spec;
  spec.files = files;
  spec.seed = seed;
  spec.compressor = compressor;
  auto img = make_sample_image(dir, name, spec);
  if (!img.ok()) throw std::runtime_error("Ferry sample image '" + name + "': " + img.error().message);
  return std::move(*img);
}

}  // namespace ferry::testkit
