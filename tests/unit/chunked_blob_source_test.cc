// ChunkedBlobSource over blobs built in memory (testkit::MemorySource): reads at every kind of
// offset equal the uncompressed device, partial reads of a chunk decode it once, and a damaged,
// undecodable or unreadable chunk is EIO naming the blob and the chunk while the others read.
#include "storage/chunked_blob_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "kit/counting_reader.h"
#include "kit/memory_blob.h"
#include "kit/memory_source.h"
#include "storage/chunk_codec.h"

namespace ferry::storage {
namespace {

using erofs::ChunkInfo;
using erofs::ChunkTable;
using erofs::Compression;

constexpr uint32_t kChunk = 64 * 1024;

using testkit::chunk_bytes;

struct Built {
  std::shared_ptr<ChunkTable> table;
  std::shared_ptr<testkit::MemorySource> blob;
  std::vector<std::byte> device;  // the uncompressed device the source must read as
};

Built build(const std::vector<std::vector<std::byte>>& chunks, Compression algorithm) {
  testkit::MemoryBlob m = testkit::make_memory_blob(chunks, algorithm, kChunk);
  return {m.table,
          std::make_shared<testkit::MemorySource>(std::move(m.stored), "mem-blob", /*viewable=*/false),
          std::move(m.device)};
}

using testkit::CountingReader;

std::vector<std::vector<std::byte>> sample_chunks() {
  return {chunk_bytes(kChunk, 1), chunk_bytes(kChunk, 2, /*compressible=*/false), chunk_bytes(kChunk, 3),
          chunk_bytes(5000, 4), chunk_bytes(kChunk, 5)};
}

class ChunkedBlobSourceTest : public ::testing::TestWithParam<Compression> {
 protected:
  void SetUp() override {
    built_ = build(sample_chunks(), GetParam());
    reader_ = std::make_shared<CountingReader>(built_.blob);
    auto s = ChunkedBlobSource::open(built_.table, 1, reader_, {.cache_slots = 2});
    ASSERT_TRUE(s.ok()) << s.error().message;
    source_ = *s;
  }
  std::vector<std::byte> read(uint64_t offset, size_t n, Status* status = nullptr) {
    std::vector<std::byte> out(n);
    Status st = source_->read_exact(offset, out);
    if (status != nullptr)
      *status = st;
    else
      EXPECT_TRUE(st.ok()) << st.error().message;
    return out;
  }
  std::vector<std::byte> want(uint64_t offset, size_t n) const {
    return {built_.device.begin() + static_cast<std::ptrdiff_t>(offset),
            built_.device.begin() + static_cast<std::ptrdiff_t>(offset + n)};
  }
  // Flips one byte in the middle of chunk `i`'s stored bytes.
  void damage(size_t i) {
    const ChunkInfo& c = built_.table->chunks[i];
    built_.blob->bytes()[c.blob_offset + c.stored_size / 2] ^= std::byte{0x5A};
  }

  Built built_;
  std::shared_ptr<CountingReader> reader_;
  std::shared_ptr<ChunkedBlobSource> source_;
};

TEST_P(ChunkedBlobSourceTest, ReadsEqualTheUncompressedDeviceAtAnyOffset) {
  ASSERT_EQ(source_->size(), built_.device.size());
  // Whole device, chunk boundaries, the zero padding after the short chunk, and random ranges.
  EXPECT_EQ(read(0, built_.device.size()), built_.device);
  const uint64_t short_end = 3 * kChunk + 5000;
  for (uint64_t off : {uint64_t{0}, uint64_t{kChunk - 1}, uint64_t{kChunk}, 2 * uint64_t{kChunk} - 7,
                       short_end - 1, short_end, short_end + 10, 4 * uint64_t{kChunk} - 1}) {
    EXPECT_EQ(read(off, 4096), want(off, 4096)) << off;
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300; ++i) {
    const uint64_t off = rng() % built_.device.size();
    const size_t n =
        static_cast<size_t>(rng() % std::min<uint64_t>(3 * kChunk, built_.device.size() - off + 1));
    ASSERT_EQ(read(off, n), want(off, n)) << off << "+" << n;
  }
}

TEST_P(ChunkedBlobSourceTest, SequentialPartialReadsDecodeEachChunkOnce) {
  for (uint64_t off = 0; off < 3 * kChunk; off += 4096) ASSERT_EQ(read(off, 4096), want(off, 4096));
  EXPECT_EQ(reader_->fetches.load(), 3U) << "4 KiB reads of three chunks";
  // A read of a whole chunk is decoded straight into the caller's buffer.
  const uint64_t last = built_.table->chunks[4].device_offset;
  EXPECT_EQ(read(last, kChunk), want(last, kChunk));
  EXPECT_EQ(reader_->fetches.load(), 4U);
}

TEST_P(ChunkedBlobSourceTest, DamagedChunkIsEioNamingBlobAndChunkOthersRead) {
  damage(2);  // compressed
  damage(1);  // stored raw (incompressible): only the digest can tell
  for (uint64_t chunk : {1, 2}) {
    for (size_t n : {size_t{100}, size_t{kChunk}}) {
      Status st;
      read(chunk * kChunk, n, &st);
      ASSERT_FALSE(st.ok()) << "chunk " << chunk << " read " << n;
      EXPECT_EQ(st.error().code, EIO);
      const std::string hex = erofs::digest_hex(built_.table->blobs[0].digest);
      EXPECT_NE(st.error().message.find("blob sha256:" + hex + " chunk " + std::to_string(chunk)),
                std::string::npos)
          << st.error().message;
      EXPECT_NE(st.error().message.find("device offset " + std::to_string(chunk * kChunk)), std::string::npos)
          << st.error().message;
    }
  }
  // A read spanning a good and a damaged chunk fails as a whole; the good chunks still read.
  Status st;
  read(kChunk / 2, kChunk, &st);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(read(0, 4096), want(0, 4096));
  EXPECT_EQ(read(3 * kChunk, 8192), want(3 * kChunk, 8192));
  // A failure is not cached: repaired, the chunk reads again.
  damage(2);
  EXPECT_EQ(read(2 * kChunk + 10, 100), want(2 * kChunk + 10, 100));
}

TEST_P(ChunkedBlobSourceTest, UnreadableStoredBytesAreEio) {
  const ChunkInfo& c = built_.table->chunks[4];
  built_.blob->fail_range(c.blob_offset, c.blob_offset + 1);
  Status st;
  read(c.device_offset + 1, 10, &st);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EIO);
  EXPECT_NE(st.error().message.find("chunk 4"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("injected read failure"), std::string::npos) << st.error().message;
  EXPECT_EQ(read(0, 10), want(0, 10));
}

TEST_P(ChunkedBlobSourceTest, ReadsPastTheDeviceOrInAGapAreEio) {
  Status st;
  read(built_.device.size() - 10, 11, &st);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("past the end"), std::string::npos) << st.error().message;
  // A table that leaves a gap between two chunks (the source is given any table).
  Built gappy = build({chunk_bytes(4096, 9), chunk_bytes(4096, 10)}, GetParam());
  gappy.table->chunks[1].device_offset = 8192;
  gappy.table->blobs[0].device_size = 12288;
  auto s = ChunkedBlobSource::open(gappy.table, 1, std::make_shared<BlobFileReader>(gappy.blob));
  ASSERT_TRUE(s.ok());
  std::vector<std::byte> out(100);
  st = (*s)->read_exact(4096 + 50, out);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("no chunk holds device offset 4146"), std::string::npos)
      << st.error().message;
  EXPECT_FALSE(ChunkedBlobSource::open(gappy.table, 2, std::make_shared<BlobFileReader>(gappy.blob)).ok());
}

TEST_P(ChunkedBlobSourceTest, ConcurrentReadersThroughATinyCacheGetExactBytes) {
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      std::vector<std::byte> out;
      for (int i = 0; i < 400; ++i) {
        const uint64_t off = rng() % built_.device.size();
        const size_t n =
            static_cast<size_t>(1 + rng() % std::min<uint64_t>(20000, built_.device.size() - off));
        out.resize(n);
        Status st = source_->read_exact(off, out);
        if (!st.ok() || std::memcmp(out.data(), built_.device.data() + off, n) != 0) bad.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Codecs, ChunkedBlobSourceTest,
                         ::testing::Values(Compression::kZstd, Compression::kLz4),
                         [](const auto& p) { return std::string(compression_name(p.param)); });

TEST(OpenBlobDevice, UncompressedBlobIsTheFileItselfAndSizesAreChecked) {
  Built none = build(sample_chunks(), Compression::kNone);
  // As the builder lays an uncompressed blob out: its file is its device.
  auto file = std::make_shared<testkit::MemorySource>(none.device, "none-blob", false);
  none.table->blobs[0].blob_size = none.device.size();
  auto device = open_blob_device(none.table, 1, file);
  ASSERT_TRUE(device.ok()) << device.error().message;
  EXPECT_EQ(device->get(), file.get()) << "raw pread, no decoding layer";

  Built zstd = build(sample_chunks(), Compression::kZstd);
  auto served = open_blob_device(zstd.table, 1, zstd.blob);
  ASSERT_TRUE(served.ok()) << served.error().message;
  EXPECT_EQ((*served)->size(), zstd.device.size());
  auto truncated = std::make_shared<testkit::MemorySource>(
      std::vector<std::byte>(zstd.blob->bytes().begin(), zstd.blob->bytes().end() - 1), "short-blob", false);
  auto refused = open_blob_device(zstd.table, 1, truncated);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("short-blob"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(open_blob_device(zstd.table, 2, zstd.blob).ok());
}

}  // namespace
}  // namespace ferry::storage
