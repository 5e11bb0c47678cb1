// blob_cache_bench: what CachedBlobSource costs (the figures in its header). A blob of 64
// compressible 1 MiB zstd chunks in memory, cached in a private temp dir: a cold fill (fetch,
// decode, sha256, write data + record per chunk), the first 4 KiB read of each chunk in a fresh
// source over the filled cache (the once-per-process check: read + sha256 of the whole chunk), and
// 4 KiB reads of verified chunks (the hot path: an atomic load and one pread from the page cache),
// from one thread and from two at once.
// Usage: build/bin/blob_cache_bench   (prints one line)
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "kit/memory_blob.h"
#include "kit/memory_source.h"
#include "kit/temp_dir.h"
#include "storage/cached_blob_source.h"

using namespace ferry;

int main() {
  constexpr uint32_t kChunk = 1U << 20U;
  constexpr int kChunks = 64;
  std::vector<std::vector<std::byte>> contents;
  for (int i = 0; i < kChunks; ++i) contents.push_back(testkit::chunk_bytes(kChunk, static_cast<uint64_t>(i)));
  testkit::MemoryBlob blob = testkit::make_memory_blob(contents, erofs::Compression::kZstd, kChunk);
  auto file = std::make_shared<testkit::MemorySource>(std::span<const std::byte>(blob.stored), "memory", false);
  auto reader = std::make_shared<storage::BlobFileReader>(file);
  testkit::TempDir dir;
  const storage::BlobCacheOptions options{.work_dir = dir / "cache", .merge_limit = 1U << 20U};
  using clock = std::chrono::steady_clock;
  auto us = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
  };
  bool ok = true;

  auto cold = storage::CachedBlobSource::open(blob.table, 1, reader, options);
  if (!cold.ok()) return 1;
  const auto t0 = clock::now();
  ok &= (*cold)->fill(0, kChunks).ok();
  const auto t1 = clock::now();

  auto warm = storage::CachedBlobSource::open(blob.table, 1, reader, options);
  if (!warm.ok()) return 1;
  std::vector<std::byte> buf(4096);
  const auto t2 = clock::now();
  for (uint64_t i = 0; i < kChunks; ++i) ok &= (*warm)->read_exact(i * kChunk, buf).ok();
  const auto t3 = clock::now();
  constexpr int kHits = 200000;
  std::mt19937_64 rng(3);
  for (int i = 0; i < kHits; ++i) ok &= (*warm)->read_exact((rng() % (kChunks * 256ULL)) * 4096, buf).ok();
  const auto t4 = clock::now();
  std::atomic<bool> ok2{true};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::byte> b(4096);
      std::mt19937_64 r(10 + static_cast<uint64_t>(t));
      for (int i = 0; i < kHits; ++i) {
        if (!(*warm)->read_exact((r() % (kChunks * 256ULL)) * 4096, b).ok()) ok2 = false;
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto t5 = clock::now();
  const storage::BlobCacheStats s = (*warm)->stats();
  ok &= ok2 && s.misses == 0 && s.corrupt_refetched == 0;
  std::printf(
      "zstd 1 MiB chunks: cold fill %.0f us per chunk; first read of a present chunk (check) %.0f us; "
      "4 KiB verified hit %.2f us (1 thread), %.2f us per read (2 threads)%s\n",
      us(t0, t1) / kChunks, us(t2, t3) / kChunks, us(t3, t4) / kHits, us(t4, t5) / (2.0 * kHits),
      ok ? "" : " (READ ERRORS)");
  return ok ? 0 : 1;
}
