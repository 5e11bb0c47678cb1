// chunk_source_bench: what ChunkedBlobSource costs per chunk (the figures in its header). A blob
// of 64 compressible 1 MiB chunks in memory, read: whole chunks (decode + sha256 each), every
// chunk as eight sequential 128 KiB reads (one miss, seven cache hits), and 4 KiB cache hits.
// Usage: build/bin/chunk_source_bench   (prints one line per codec)
#include <chrono>
#include <cstdio>
#include <random>

#include "kit/memory_source.h"
#include "kit/memory_blob.h"
#include "storage/chunk_codec.h"
#include "storage/chunked_blob_source.h"

using namespace ferry;

int main() {
  constexpr uint32_t kChunk = 1U << 20U;
  constexpr int kChunks = 64;
  for (auto algo : {erofs::Compression::kZstd, erofs::Compression::kLz4}) {
    std::vector<std::vector<std::byte>> contents(kChunks, std::vector<std::byte>(kChunk));
    std::mt19937_64 rng(1);
    for (auto& data : contents) {
      for (auto& b : data) b = static_cast<std::byte>('a' + rng() % 8);
    }
    testkit::MemoryBlob blob = testkit::make_memory_blob(contents, algo, kChunk);
    const auto& table = blob.table;
    const auto& stored = blob.stored;
    auto file = std::make_shared<ferry::testkit::MemorySource>(std::span<const std::byte>(stored), "memory", false);
    auto source = storage::ChunkedBlobSource::open(table, 1, std::make_shared<storage::BlobFileReader>(file));
    if (!source.ok()) return 1;
    std::vector<std::byte> buf(kChunk);
    bool ok = true;
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    for (uint64_t i = 0; i < kChunks; ++i) ok &= (*source)->read_exact(i * kChunk, buf).ok();
    const auto t1 = clock::now();
    for (uint64_t i = 0; i < kChunks; ++i) {
      for (uint64_t o = 0; o < kChunk; o += 128 * 1024)
        ok &= (*source)->read_exact(i * kChunk + o, std::span(buf).first(128 * 1024)).ok();
    }
    const auto t2 = clock::now();
    constexpr int kHitRounds = 20;
    for (int r = 0; r < kHitRounds; ++r) {
      for (uint64_t o = 0; o < kChunk; o += 4096)
        ok &= (*source)->read_exact(o, std::span(buf).first(4096)).ok();
    }
    const auto t3 = clock::now();
    auto us = [](clock::time_point a, clock::time_point b) {
      return std::chrono::duration<double, std::micro>(b - a).count();
    };
    std::printf(
        "%s: whole 1 MiB chunk (decode + sha256) %.0f us; 8 x 128 KiB reads of a chunk %.0f us; "
        "4 KiB cache hit %.2f us%s\n",
        std::string(storage::compression_name(algo)).c_str(), us(t0, t1) / kChunks, us(t1, t2) / kChunks,
        us(t2, t3) / (kHitRounds * (kChunk / 4096.0)), ok ? "" : " (READ ERRORS)");
  }
  return 0;
}
