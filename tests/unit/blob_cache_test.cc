// CachedBlobSource and its cache files (src/storage/cached_blob_source.h, blob_cache_file.h,
// chunk_map.h) over blobs built in memory: it serves what ChunkedBlobSource serves, keeps what it
// fetched across opens and processes, refetches what is damaged on disk instead of serving it,
// replaces unusable maps, survives a process killed mid-write, fetches each chunk once however
// many readers wait and merges adjacent missing chunks into one request.
#include "storage/cached_blob_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <random>
#include <thread>

#include "common/crc32c.h"
#include "common/le.h"
#include "kit/alloc_counter.h"
#include "kit/counting_reader.h"
#include "kit/memory_blob.h"
#include "kit/memory_source.h"
#include "kit/process.h"
#include "kit/temp_dir.h"
#include "kit/wait.h"
#include "storage/chunk_map.h"
#include "storage/chunked_blob_source.h"

namespace ferry::storage {
namespace {

using erofs::Compression;
using testkit::CountingReader;

constexpr uint32_t kChunk = 64 * 1024;

using testkit::chunk_bytes;

// Eight chunks: compressible, incompressible (stored raw) and one short one (padding to read).
std::vector<std::vector<std::byte>> sample_chunks() {
  std::vector<std::vector<std::byte>> c;
  for (uint64_t i = 0; i < 8; ++i) c.push_back(chunk_bytes(i == 5 ? 5000 : kChunk, i + 1, i % 3 != 1));
  return c;
}

struct Blob {
  std::shared_ptr<erofs::ChunkTable> table;
  std::shared_ptr<testkit::MemorySource> file;
  std::vector<std::byte> device;
};

Blob make_blob(const std::vector<std::vector<std::byte>>& chunks, Compression algorithm, uint8_t digest_byte = 0xAB,
               uint32_t chunk_size = kChunk) {
  testkit::MemoryBlob m = testkit::make_memory_blob(chunks, algorithm, chunk_size);
  m.table->blobs[0].digest.fill(digest_byte);
  return {m.table, std::make_shared<testkit::MemorySource>(std::move(m.stored), "mem-blob", false),
          std::move(m.device)};
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

class BlobCacheTest : public ::testing::TestWithParam<Compression> {
 protected:
  void SetUp() override {
    blob_ = make_blob(sample_chunks(), GetParam());
    reader_ = std::make_shared<CountingReader>(blob_.file);
    work_dir_ = dir_ / "cache";
  }
  std::shared_ptr<CachedBlobSource> open(BlobCacheOptions options = {}) {
    if (options.work_dir.empty()) options.work_dir = work_dir_;
    auto s = CachedBlobSource::open(blob_.table, 1, reader_, options);
    if (!s.ok()) throw std::runtime_error(s.error().message);
    return *s;
  }
  std::vector<std::byte> want(uint64_t offset, size_t n) const {
    return {blob_.device.begin() + static_cast<std::ptrdiff_t>(offset),
            blob_.device.begin() + static_cast<std::ptrdiff_t>(offset + n)};
  }
  static std::vector<std::byte> read(const ByteSource& s, uint64_t offset, size_t n) {
    std::vector<std::byte> out(n, std::byte{0xEE});
    Status st = s.read_exact(offset, out);
    if (!st.ok()) throw std::runtime_error(st.error().message);
    return out;
  }
  [[nodiscard]] const erofs::ChunkInfo& chunk(size_t i) const { return blob_.table->chunks[i]; }
  [[nodiscard]] std::string hex() const { return erofs::digest_hex(blob_.table->blobs[0].digest); }
  [[nodiscard]] std::string data_path() const { return work_dir_ + "/" + hex() + ".blob.data"; }
  [[nodiscard]] std::string map_path() const { return work_dir_ + "/" + hex() + ".blob.chunk_map.v1"; }
  [[nodiscard]] uint32_t chunk_count() const { return blob_.table->blobs[0].chunk_count; }

  testkit::TempDir dir_;
  std::string work_dir_;
  Blob blob_;
  std::shared_ptr<CountingReader> reader_;
};

INSTANTIATE_TEST_SUITE_P(Codecs, BlobCacheTest,
                         ::testing::Values(Compression::kNone, Compression::kZstd, Compression::kLz4),
                         [](const auto& p) { return std::string(compression_name(p.param)); });

TEST_P(BlobCacheTest, ServesTheBytesChunkedBlobSourceServesAtAnyOffset) {
  auto cached = open();
  auto plain = ChunkedBlobSource::open(blob_.table, 1, std::make_shared<BlobFileReader>(blob_.file));
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  ASSERT_EQ(cached->size(), (*plain)->size());
  std::mt19937_64 rng(11);
  for (int i = 0; i < 400; ++i) {
    const uint64_t off = rng() % blob_.device.size();
    const size_t n = static_cast<size_t>(rng() % std::min<uint64_t>(3 * kChunk, blob_.device.size() - off + 1));
    ASSERT_EQ(read(*cached, off, n), read(**plain, off, n)) << off << "+" << n;
    ASSERT_EQ(read(*cached, off, n), want(off, n)) << off << "+" << n;
  }
  // The padding after the short chunk reads as zeros, and the whole device as the device.
  const uint64_t short_end = chunk(5).device_offset + 5000;
  EXPECT_EQ(read(*cached, short_end - 8, 100), want(short_end - 8, 100));
  EXPECT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);
  // Each chunk was fetched once; a fully cached data file is the uncompressed device.
  for (size_t i = 0; i < chunk_count(); ++i) EXPECT_EQ(reader_->fetched(i), 1U) << i;
  const BlobCacheStats s = cached->stats();
  EXPECT_EQ(s.chunks_present, chunk_count());
  EXPECT_EQ(s.chunks_total, chunk_count());
  EXPECT_EQ(s.bytes_fetched, blob_.file->size());
  EXPECT_EQ(s.misses, chunk_count());
  EXPECT_GT(s.hits, 0U);
  EXPECT_EQ(testkit::read_file(data_path()), std::string(reinterpret_cast<const char*>(blob_.device.data()),
                                                          blob_.device.size()));
  std::vector<std::byte> past(11);
  EXPECT_FALSE(cached->read_exact(blob_.device.size() - 10, past).ok());
}

TEST_P(BlobCacheTest, AReadOfVerifiedChunksAllocatesNothing) {
  auto cached = open();
  ASSERT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);  // fetched and verified
  std::vector<std::byte> out(3 * kChunk);
  size_t allocations = 0;
  size_t failures = 0;
  {
    const testkit::AllocationCounter counter;
    for (uint64_t off = 0; off + out.size() <= blob_.device.size(); off += 4096 * 7) {
      failures += cached->read_exact(off, std::span(out).first(4096)).ok() ? 0 : 1;
      failures += cached->read_exact(off, out).ok() ? 0 : 1;  // across chunks and the padding
    }
    allocations = counter.count();
  }
  EXPECT_EQ(failures, 0U);
  EXPECT_EQ(allocations, 0U);
  EXPECT_EQ(cached->stats().misses, chunk_count());
}

TEST_P(BlobCacheTest, ConcurrentReadersGetTheRightBytesAndFetchEachChunkOnce) {
  auto cached = open();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      std::vector<std::byte> out;
      for (int i = 0; i < 200; ++i) {
        const uint64_t off = rng() % blob_.device.size();
        const size_t n = static_cast<size_t>(rng() % std::min<uint64_t>(2 * kChunk, blob_.device.size() - off + 1));
        out.assign(n, std::byte{0});
        if (!cached->read_exact(off, out).ok() || out != want(off, n)) wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  for (size_t i = 0; i < chunk_count(); ++i) EXPECT_LE(reader_->fetched(i), 1U) << i;
}

TEST_P(BlobCacheTest, ASecondOpenFetchesNothingThatIsPresent) {
  {
    auto first = open();
    // Half the chunks: 0, 2, 4, 6.
    for (size_t i = 0; i < chunk_count(); i += 2) (void)read(*first, chunk(i).device_offset, 100);
  }
  reader_->reset();
  auto second = open();
  EXPECT_EQ(second->stats().chunks_present, chunk_count() / 2);
  EXPECT_EQ(read(*second, 0, blob_.device.size()), blob_.device);
  for (size_t i = 0; i < chunk_count(); ++i) EXPECT_EQ(reader_->fetched(i), i % 2) << "chunk " << i;
  reader_->reset();
  auto third = open();
  EXPECT_EQ(read(*third, 0, blob_.device.size()), blob_.device);
  EXPECT_EQ(reader_->fetches.load(), 0U);
  const BlobCacheStats s = third->stats();
  EXPECT_EQ(s.misses, 0U);
  EXPECT_EQ(s.hits, chunk_count());
  EXPECT_EQ(s.corrupt_refetched, 0U);
  EXPECT_EQ(s.chunks_present, chunk_count());
}

TEST_P(BlobCacheTest, AChunkDamagedOnDiskIsRefetchedNeverServed) {
  { EXPECT_EQ(read(*open(), 0, blob_.device.size()), blob_.device); }
  // Bit rot in chunk 2 (its record still says present, with the right crc).
  {
    UniqueFd fd(::open(data_path().c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    const std::byte junk[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
    ASSERT_EQ(::pwrite(fd.get(), junk, sizeof junk, static_cast<off_t>(chunk(2).device_offset + 100)), 3);
  }
  reader_->reset();
  auto cached = open();
  EXPECT_EQ(read(*cached, chunk(2).device_offset + 50, 100), want(chunk(2).device_offset + 50, 100));
  EXPECT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);
  EXPECT_EQ(cached->stats().corrupt_refetched, 1U);
  EXPECT_EQ(reader_->chunks_fetched(), 1U);
  EXPECT_EQ(reader_->fetched(2), 1U);
  // Repaired on disk: the next process finds nothing damaged.
  reader_->reset();
  auto again = open();
  EXPECT_EQ(read(*again, 0, blob_.device.size()), blob_.device);
  EXPECT_EQ(again->stats().corrupt_refetched, 0U);
  EXPECT_EQ(reader_->fetches.load(), 0U);
}

// The map's header with `edit` applied, re-checksummed (a well-formed header of something else).
std::vector<std::byte> edited_header(const ChunkMapIdentity& id, const std::function<void(std::byte*)>& edit) {
  std::vector<std::byte> h = encode_chunk_map_header(id);
  edit(h.data());
  const uint32_t crc = crc32c_update(0, std::span(h).first(64));
  std::memcpy(h.data() + 64, &crc, 4);
  return h;
}

TEST_P(BlobCacheTest, AnUnusableMapIsReplacedByAnEmptyOneAndTheBytesStayRight) {
  const ChunkMapIdentity ours{.blob = blob_.table->blobs[0].digest, .chunk_count = chunk_count(), .chunk_size = kChunk};
  erofs::Digest other_blob{};
  other_blob.fill(0x17);
  struct Case {
    std::string what;
    std::function<void()> damage;
  };
  const auto write_map = [&](const std::vector<std::byte>& header) {
    // Written under another name and renamed into place, as a daemon would, with every record present.
    std::vector<std::byte> bytes = header;
    bytes.resize(chunk_map_size(chunk_count()));
    for (uint32_t i = 0; i < chunk_count(); ++i) {
      const auto r = encode_chunk_record({.present = true, .crc = 0});
      std::memcpy(bytes.data() + chunk_record_offset(i), r.data(), r.size());
    }
    const std::string tmp = map_path() + ".test";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ASSERT_EQ(::rename(tmp.c_str(), map_path().c_str()), 0);
  };
  const std::vector<Case> cases = {
      {"truncated", [&] { ASSERT_EQ(::truncate(map_path().c_str(), 100), 0); }},
      {"truncated records", [&] { ASSERT_EQ(::truncate(map_path().c_str(), chunk_record_offset(3)), 0); }},
      {"bad header checksum",
       [&] {
         std::vector<std::byte> h = encode_chunk_map_header(ours);
         h[20] ^= std::byte{1};
         write_map(h);
       }},
      {"foreign version", [&] { write_map(edited_header(ours, [](std::byte* h) { h[8] = std::byte{2}; })); }},
      {"another blob's map",
       [&] { write_map(encode_chunk_map_header({.blob = other_blob, .chunk_count = chunk_count(), .chunk_size = kChunk})); }},
      {"another chunk count",
       [&] {
         write_map(encode_chunk_map_header({.blob = ours.blob, .chunk_count = chunk_count() + 1, .chunk_size = kChunk}));
       }},
      {"another chunk size",
       [&] { write_map(encode_chunk_map_header({.blob = ours.blob, .chunk_count = chunk_count(), .chunk_size = 2 * kChunk})); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    { EXPECT_EQ(read(*open(), 0, blob_.device.size()), blob_.device); }
    // Damage the data too: a map that is not replaced would serve it.
    {
      UniqueFd fd(::open(data_path().c_str(), O_RDWR | O_CLOEXEC));
      const std::vector<std::byte> junk(blob_.device.size(), std::byte{0x66});
      ASSERT_EQ(::pwrite(fd.get(), junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
    }
    c.damage();
    // A daemon holding the old map keeps its file: the map is replaced, never rewritten in place.
    UniqueFd old(::open(map_path().c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(old.valid());
    struct stat old_st {};
    ASSERT_EQ(::fstat(old.get(), &old_st), 0);
    reader_->reset();
    auto cached = open();
    EXPECT_TRUE(cached->file().map_rebuilt());
    EXPECT_EQ(cached->stats().chunks_present, 0U);
    EXPECT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);
    EXPECT_EQ(reader_->chunks_fetched(), chunk_count());
    EXPECT_EQ(file_size(map_path()), chunk_map_size(chunk_count()));
    struct stat new_st {};
    ASSERT_EQ(::stat(map_path().c_str(), &new_st), 0);
    EXPECT_NE(new_st.st_ino, old_st.st_ino);
    struct stat after {};
    ASSERT_EQ(::fstat(old.get(), &after), 0);
    EXPECT_EQ(after.st_size, old_st.st_size);
  }
  // A good map is kept.
  auto kept = open();
  EXPECT_FALSE(kept->file().map_rebuilt());
  EXPECT_EQ(kept->stats().chunks_present, chunk_count());
}

TEST_P(BlobCacheTest, AProcessKilledBetweenDataAndRecordLeavesTheChunkMissing) {
  // The child writes a torn half of chunk 3's bytes and dies (SIGKILL) before the record.
  auto child = testkit::Process::fork_call([&] {
    auto cached = CachedBlobSource::open(blob_.table, 1, reader_, {.work_dir = work_dir_});
    if (!cached.ok()) return 2;
    const auto& c = chunk(3);
    if (!(*cached)->file().write_data(c.device_offset, std::span(blob_.device).subspan(c.device_offset, c.size / 2)).ok())
      return 3;
    ::raise(SIGKILL);
    return 4;
  });
  ASSERT_TRUE(child.ok()) << child.error().message;
  auto status = child->wait_exit(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFSIGNALED(*status)) << testkit::describe_status(*status);
  auto cached = open();
  EXPECT_EQ(cached->stats().chunks_present, 0U);
  EXPECT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);
  EXPECT_EQ(cached->stats().corrupt_refetched, 0U) << "missing, not corrupt";
  EXPECT_EQ(reader_->fetched(3), 1U);
}

TEST_P(BlobCacheTest, ARecordThatReachedTheDiskWithoutItsDataIsRefetched) {
  // Power loss may write the record's page and not the data's: the record says present (with the
  // right crc), the bytes are whatever was there (zeros).
  {
    auto cached = open();
    const auto& c = chunk(4);
    const auto bytes = std::span(blob_.device).subspan(c.device_offset, c.size);
    ASSERT_TRUE(cached->file().write_record(4, {.present = true, .crc = crc32c_update(0, bytes)}).ok());
  }
  auto cached = open();
  EXPECT_EQ(cached->stats().chunks_present, 1U);
  EXPECT_EQ(read(*cached, chunk(4).device_offset, kChunk), want(chunk(4).device_offset, kChunk));
  EXPECT_EQ(cached->stats().corrupt_refetched, 1U);
  EXPECT_EQ(reader_->fetched(4), 1U);
}

TEST_P(BlobCacheTest, ADaemonKilledMidFillLeavesOnlyPresentOrMissingChunks) {
  // 4 KiB chunks, so that the kill lands among many data and record writes.
  std::vector<std::vector<std::byte>> chunks;
  for (uint64_t i = 0; i < 400; ++i) chunks.push_back(chunk_bytes(4096, 1000 + i, i % 2 == 0));
  blob_ = make_blob(chunks, GetParam(), 0xAB, 4096);
  reader_ = std::make_shared<CountingReader>(blob_.file);
  auto child = testkit::Process::fork_call([&] {
    auto cached = CachedBlobSource::open(blob_.table, 1, reader_, {.work_dir = work_dir_, .merge_limit = 1});
    if (!cached.ok()) return 2;
    for (;;) {  // until killed: fill again and again (a refill after a full pass rewrites nothing)
      for (uint64_t i = 0; i < chunks.size(); ++i) (void)(*cached)->fill(i, 1);
      if ((*cached)->stats().chunks_present == chunks.size()) ::unlink(map_path().c_str());
      cached = CachedBlobSource::open(blob_.table, 1, reader_, {.work_dir = work_dir_, .merge_limit = 1});
      if (!cached.ok()) return 3;
    }
  });
  ASSERT_TRUE(child.ok()) << child.error().message;
  const auto present = [&] {
    const std::string map = testkit::read_file(map_path());
    uint64_t n = 0;
    for (size_t i = 0; i < chunks.size() && chunk_record_offset(i) + 8 <= map.size(); ++i) {
      n += decode_chunk_record(std::as_bytes(std::span(map)).subspan(chunk_record_offset(i)).first<8>()).present;
    }
    return n;
  };
  ASSERT_TRUE(testkit::wait_until([&] { return present() >= 50; }, std::chrono::seconds(30)));
  child->kill_and_reap();
  auto cached = open();
  const uint64_t present_at_open = cached->stats().chunks_present;
  EXPECT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);
  EXPECT_EQ(cached->stats().corrupt_refetched, 0U);
  EXPECT_EQ(reader_->chunks_fetched(), chunks.size() - present_at_open);
}

TEST_P(BlobCacheTest, SixteenReadersOfAMissingChunkMakeOneFetch) {
  auto cached = open();
  bool all_waited = false;
  reader_->during_fetch = [&] {
    // Hold the fetch until the other 15 readers wait for it (they would fetch it themselves
    // without single flight, and this condition would never hold).
    all_waited = testkit::wait_until([&] { return cached->waiting() == 15; }, std::chrono::seconds(20));
  };
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  const uint64_t base = chunk(3).device_offset;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t off = base + static_cast<uint64_t>(t) * 4096;
      std::vector<std::byte> out(4096);
      if (!cached->read_exact(off, out).ok() || out != want(off, 4096)) wrong.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(all_waited);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(reader_->fetches.load(), 1U);
  EXPECT_EQ(reader_->fetched(3), 1U);
  EXPECT_EQ(cached->stats().misses, 16U);
}

TEST_P(BlobCacheTest, AFailedFetchIsEioForEveryWaiterAndTheNextReadTriesAgain) {
  auto cached = open();
  reader_->fail = true;
  reader_->during_fetch = [&] {
    (void)testkit::wait_until([&] { return cached->waiting() == 7; }, std::chrono::seconds(20));
  };
  std::atomic<int> right_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      std::vector<std::byte> out(100);
      Status st = cached->read_exact(chunk(6).device_offset + 10, out);
      if (!st.ok() && st.error().code == EIO &&
          st.error().message.find("blob sha256:" + hex() + " chunk 6 ") != std::string::npos &&
          st.error().message.find("injected fetch failure") != std::string::npos) {
        right_errors.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(right_errors.load(), 8);
  EXPECT_EQ(reader_->fetches.load(), 1U);
  EXPECT_EQ(cached->stats().chunks_present, 0U);
  reader_->during_fetch = nullptr;
  reader_->fail = false;
  EXPECT_EQ(read(*cached, chunk(6).device_offset, kChunk), want(chunk(6).device_offset, kChunk));
  EXPECT_EQ(reader_->fetched(6), 2U);
}

TEST_P(BlobCacheTest, ASequentialReaderReadsAheadARandomOneFetchesWhatItReads) {
  {
    auto cached = open();
    for (uint64_t i : {5, 2, 7, 0}) {
      EXPECT_EQ(read(*cached, chunk(i).device_offset, 4096), want(chunk(i).device_offset, 4096)) << i;
    }
    EXPECT_EQ(reader_->chunks_fetched(), 4U) << "random reads fetched more than they read";
  }
  // A fresh cache read chunk after chunk, 4 KiB each: from the second miss on, each fetch also
  // takes the missing chunks after it (a growing window), so far fewer requests than chunks.
  reader_->reset();
  auto cached = open({.work_dir = work_dir_ + "-seq"});
  for (uint64_t i = 0; i < chunk_count(); ++i) {
    EXPECT_EQ(read(*cached, chunk(i).device_offset, 4096), want(chunk(i).device_offset, 4096)) << i;
  }
  EXPECT_EQ(reader_->chunks_fetched(), chunk_count()) << "every chunk once";
  EXPECT_LE(cached->stats().fetch_requests, chunk_count() / 2) << "no readahead";
}

TEST_P(BlobCacheTest, AdjacentMissingChunksAreFetchedInOneRunUpToTheMergeLimit) {
  {
    auto cached = open();
    // Chunks 1..4 in one read: one read_stored_run, no per-chunk read.
    const uint64_t from = chunk(1).device_offset;
    EXPECT_EQ(read(*cached, from, chunk(5).device_offset - from), want(from, chunk(5).device_offset - from));
    EXPECT_EQ(reader_->runs.load(), 1U);
    EXPECT_EQ(reader_->fetches.load(), 1U);
    EXPECT_EQ(reader_->chunks_fetched(), 4U);
    EXPECT_EQ(cached->stats().fetch_requests, 1U);
    // A present chunk splits a run: chunks 0 and 5..7 are two runs.
    reader_->reset();
    EXPECT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);
    EXPECT_EQ(reader_->runs.load(), 2U);
  }
  // With a limit of two chunks' stored bytes, fill() of chunks 0..3 makes two runs.
  ASSERT_EQ(::unlink(map_path().c_str()), 0);
  reader_->reset();
  auto limited = open({.work_dir = work_dir_, .merge_limit = uint64_t{chunk(0).stored_size} + chunk(1).stored_size});
  ASSERT_TRUE(limited->fill(0, 4).ok());
  EXPECT_EQ(reader_->runs.load(), 2U);
  EXPECT_EQ(reader_->chunks_fetched(), 4U);
  EXPECT_EQ(limited->stats().chunks_present, 4U);
  EXPECT_EQ(limited->stats().bytes_fetched,
            uint64_t{chunk(0).stored_size} + chunk(1).stored_size + chunk(2).stored_size + chunk(3).stored_size);
  EXPECT_FALSE(limited->fill(7, 2).ok());
  // A fill of the whole blob fetches the rest; then reads fetch nothing.
  reader_->reset();
  ASSERT_TRUE(limited->fill(0, chunk_count()).ok());
  EXPECT_EQ(reader_->chunks_fetched(), chunk_count() - 4);
  EXPECT_EQ(limited->stats().chunks_present, chunk_count());
  reader_->reset();
  EXPECT_EQ(read(*limited, 0, blob_.device.size()), blob_.device);
  EXPECT_EQ(reader_->fetches.load(), 0U);
}

TEST_P(BlobCacheTest, AFillGoesOnPastAFailedChunkAndReturnsItsError) {
  auto cached = open({.work_dir = work_dir_, .merge_limit = 1});  // one chunk per request
  blob_.file->fail_range(chunk(2).blob_offset, chunk(2).blob_offset + 1);
  Status st = cached->fill(0, chunk_count());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EIO);
  EXPECT_NE(st.error().message.find(" chunk 2 "), std::string::npos) << st.error().message;
  EXPECT_EQ(cached->stats().chunks_present, chunk_count() - 1);
  blob_.file->fail_range(0, 0);
  EXPECT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);
}

TEST_P(BlobCacheTest, TwoProcessesSharingTheCacheReadTheRightBytes) {
  const auto reader_body = [&](uint64_t seed) {
    return [&, seed] {
      auto cached = CachedBlobSource::open(blob_.table, 1, reader_, {.work_dir = work_dir_});
      if (!cached.ok()) return 2;
      std::mt19937_64 rng(seed);
      std::vector<std::byte> out;
      for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 300; ++i) {
          const uint64_t off = rng() % blob_.device.size();
          const size_t n = static_cast<size_t>(rng() % std::min<uint64_t>(kChunk, blob_.device.size() - off + 1));
          out.assign(n, std::byte{0});
          if (!(*cached)->read_exact(off, out).ok() || out != want(off, n)) return 1;
        }
        // A fresh open sees what the other process has written meanwhile.
        cached = CachedBlobSource::open(blob_.table, 1, reader_, {.work_dir = work_dir_});
        if (!cached.ok()) return 2;
      }
      return 0;
    };
  };
  auto a = testkit::Process::fork_call(reader_body(1));
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = testkit::Process::fork_call(reader_body(2));
  ASSERT_TRUE(b.ok()) << b.error().message;
  for (auto* p : {&*a, &*b}) {
    auto st = p->wait_exit(std::chrono::seconds(60));
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << testkit::describe_status(*st);
  }
  auto cached = open();
  EXPECT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);
  EXPECT_EQ(cached->stats().corrupt_refetched, 0U);
}

TEST_P(BlobCacheTest, FilesArePrivateAndAMissingWorkDirIsMade0700) {
  work_dir_ = dir_ / "a/b/cache";
  auto cached = open();
  (void)read(*cached, 0, 10);
  struct stat st {};
  ASSERT_EQ(::stat(work_dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700U);
  for (const std::string& f : {data_path(), map_path()}) {
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600U) << f;
  }
  EXPECT_EQ(file_size(data_path()), blob_.device.size());
  EXPECT_EQ(file_size(map_path()), chunk_map_size(chunk_count()));
  // Files someone made readable by others are made private again when opened.
  cached.reset();
  ASSERT_EQ(::chmod(data_path().c_str(), 0644), 0);
  ASSERT_EQ(::chmod(map_path().c_str(), 0644), 0);
  cached = open();
  for (const std::string& f : {data_path(), map_path()}) {
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600U) << f;
  }
}

TEST_P(BlobCacheTest, AnUnwritableWorkDirIsAnErrorNamingIt) {
  // Below a regular file: it cannot be made.
  const std::string file = dir_ / "plain";
  ASSERT_EQ(testkit::run_shell("touch " + file), 0);
  auto below_file = CachedBlobSource::open(blob_.table, 1, reader_, {.work_dir = file + "/cache"});
  ASSERT_FALSE(below_file.ok());
  EXPECT_NE(below_file.error().message.find(file + "/cache"), std::string::npos) << below_file.error().message;
  // A read-only file system (root writes through permissions, not through a read-only mount).
  const std::string ro = dir_ / "ro";
  ASSERT_EQ(::mkdir(ro.c_str(), 0700), 0);
  if (::geteuid() == 0) {
    ASSERT_EQ(testkit::run_shell("mount -t tmpfs -o ro,size=1m tmpfs " + ro), 0);
  } else {
    ASSERT_EQ(::chmod(ro.c_str(), 0500), 0);
  }
  testkit::MountGuard guard(ro);
  auto read_only = CachedBlobSource::open(blob_.table, 1, reader_, {.work_dir = ro});
  ASSERT_FALSE(read_only.ok());
  EXPECT_NE(read_only.error().message.find("'" + ro + "'"), std::string::npos) << read_only.error().message;
  EXPECT_NE(read_only.error().message.find("writable"), std::string::npos) << read_only.error().message;
}

TEST_P(BlobCacheTest, AFullDiskStillServesVerifiedBytesAndCachesNothingWrong) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string small = dir_ / "small";
  ASSERT_EQ(::mkdir(small.c_str(), 0700), 0);
  ASSERT_EQ(testkit::run_shell("mount -t tmpfs -o size=128k tmpfs " + small), 0);
  testkit::MountGuard guard(small);
  work_dir_ = small;
  auto cached = open();
  EXPECT_EQ(read(*cached, 0, blob_.device.size()), blob_.device);
  const uint64_t present = cached->stats().chunks_present;
  EXPECT_LT(present, chunk_count()) << "the tmpfs holds fewer than all chunks";
  reader_->reset();
  auto again = open();
  EXPECT_EQ(read(*again, 0, blob_.device.size()), blob_.device);
  EXPECT_EQ(again->stats().corrupt_refetched, 0U);
}

}  // namespace
}  // namespace ferry::storage
