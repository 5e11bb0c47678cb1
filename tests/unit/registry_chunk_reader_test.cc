// RegistryChunkReader over a RemoteBlobFetcher of the test's own (a seam: the blob in memory, every
// request recorded, failures on demand): one request per chunk or per run of back-to-back
// chunks, with exactly their range and the fetcher's deadline; refusals (a run with a gap, a
// chunk past the blob) send nothing; counters; errors carry the chunk and the fetcher's words.
// StoredChunkReader's default read_stored_run (BlobFileReader) reads the chunks one by one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "storage/registry_chunk_reader.h"
#include "kit/memory_source.h"
#include "support/test_support.h"

namespace ferry::storage {
namespace {

struct Request {
  std::string digest;
  uint64_t offset;
  size_t size;
  RemoteBlobFetcher::Clock::time_point deadline;
};

class MemoryFetcher final : public RemoteBlobFetcher {
 public:
  explicit MemoryFetcher(std::string blob) : blob_(std::move(blob)) {}
  Status fetch(const std::string& digest, uint64_t offset, std::span<std::byte> out,
               Clock::time_point deadline) const override {
    std::lock_guard lock(mu_);
    requests_.push_back({digest, offset, out.size(), deadline});
    if (fail_) return Error{ETIMEDOUT, name_ + ", blob " + digest + ": deadline passed"};
    std::memcpy(out.data(), blob_.data() + offset, out.size());
    return ok_status();
  }
  [[nodiscard]] std::chrono::milliseconds timeout() const override { return std::chrono::seconds(7); }
  [[nodiscard]] const std::string& name() const override { return name_; }
  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  void fail(bool f) { fail_ = f; }

 private:
  std::string blob_;
  std::string name_ = "registry r.test:5000, repository ns/app";
  mutable std::mutex mu_;
  mutable std::vector<Request> requests_;
  bool fail_ = false;
};

// Three chunks back to back (stored sizes 100, 200, 50) and one after a gap.
std::vector<erofs::ChunkInfo> chunks() {
  std::vector<erofs::ChunkInfo> c(4);
  c[0].blob_offset = 0, c[0].stored_size = 100;
  c[1].blob_offset = 100, c[1].stored_size = 200;
  c[2].blob_offset = 300, c[2].stored_size = 50;
  c[3].blob_offset = 400, c[3].stored_size = 60;
  return c;
}

std::span<std::byte> bytes(std::string& s) { return std::as_writable_bytes(std::span(s.data(), s.size())); }

constexpr const char* kDigest = "sha256:00112233";

TEST(RegistryChunkReaderTest, OneRequestPerChunkAndPerRunWithExactlyTheirRange) {
  const std::string blob = test::random_bytes(500, 1);
  auto fetcher = std::make_shared<MemoryFetcher>(blob);
  auto reader = RegistryChunkReader::open(fetcher, kDigest, blob.size());
  EXPECT_EQ(reader->name(), "registry r.test:5000, repository ns/app, blob sha256:00112233");
  const auto c = chunks();

  std::string one(200, '\0');
  const auto before = RemoteBlobFetcher::Clock::now();
  ASSERT_TRUE(reader->read_stored(11, c[1], bytes(one)).ok());
  EXPECT_EQ(one, blob.substr(100, 200));
  std::string run(350, '\0');
  ASSERT_TRUE(reader->read_stored_run(10, std::span(c).first(3), bytes(run)).ok());
  EXPECT_EQ(run, blob.substr(0, 350));

  const auto r = fetcher->requests();
  ASSERT_EQ(r.size(), 2U) << "a run of three chunks is one request";
  EXPECT_EQ(r[0].digest, kDigest);
  EXPECT_EQ(r[0].offset, 100U);
  EXPECT_EQ(r[0].size, 200U);
  EXPECT_EQ(r[1].offset, 0U);
  EXPECT_EQ(r[1].size, 350U);
  EXPECT_GE(r[0].deadline, before + std::chrono::seconds(7)) << "the deadline is now + the fetcher's timeout";
  EXPECT_LE(r[0].deadline, RemoteBlobFetcher::Clock::now() + std::chrono::seconds(7));
  EXPECT_EQ(reader->stats().requests.load(), 2U);
  EXPECT_EQ(reader->stats().bytes.load(), 550U);
  EXPECT_EQ(reader->stats().failures.load(), 0U);
  uint64_t histogram = 0;
  for (const auto& b : reader->stats().latency) histogram += b.load();
  EXPECT_EQ(histogram, 2U);

  const auto live = live_registry_readers();
  EXPECT_NE(std::find(live.begin(), live.end(), reader), live.end());
}

TEST(RegistryChunkReaderTest, RefusalsSendNothing) {
  const std::string blob = test::random_bytes(500, 2);
  auto fetcher = std::make_shared<MemoryFetcher>(blob);
  RegistryChunkReader reader(fetcher, kDigest, blob.size());
  const auto c = chunks();
  std::string buf(410, '\0');
  // A gap between chunk 2 and chunk 3.
  Status st = reader.read_stored_run(10, std::span(c).subspan(2, 2), bytes(buf).first(110));
  EXPECT_EQ(st.error().code, EINVAL);
  // A buffer that is not the run's size.
  st = reader.read_stored_run(10, std::span(c).first(2), bytes(buf).first(299));
  EXPECT_EQ(st.error().code, EINVAL);
  // A chunk past the blob's end.
  erofs::ChunkInfo past;
  past.blob_offset = 450;
  past.stored_size = 60;
  st = reader.read_stored(99, past, bytes(buf).first(60));
  EXPECT_EQ(st.error().code, EIO);
  EXPECT_NE(st.error().message.find("chunk 99"), std::string::npos) << st.error().message;
  EXPECT_TRUE(fetcher->requests().empty());
}

TEST(RegistryChunkReaderTest, AFailedFetchIsCountedAndNamesTheChunkAndTheRegistry) {
  const std::string blob = test::random_bytes(500, 3);
  auto fetcher = std::make_shared<MemoryFetcher>(blob);
  RegistryChunkReader reader(fetcher, kDigest, blob.size());
  fetcher->fail(true);
  const auto c = chunks();
  std::string buf(350, '\0');
  Status st = reader.read_stored_run(10, std::span(c).first(3), bytes(buf));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ETIMEDOUT);
  EXPECT_NE(st.error().message.find("chunks 10..12"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("registry r.test:5000, repository ns/app, blob sha256:00112233"),
            std::string::npos)
      << st.error().message;
  EXPECT_EQ(reader.stats().failures.load(), 1U);
  EXPECT_EQ(reader.stats().bytes.load(), 0U);
}

TEST(RegistryChunkReaderTest, TheDefaultRunReadsTheChunksOneByOne) {
  const std::string blob = test::random_bytes(500, 4);
  BlobFileReader reader(std::make_shared<testkit::MemorySource>(blob, "mem"));
  const auto c = chunks();
  std::string buf(350, '\0');
  ASSERT_TRUE(reader.read_stored_run(0, std::span(c).first(3), bytes(buf)).ok());
  EXPECT_EQ(buf, blob.substr(0, 350));
  EXPECT_EQ(reader.read_stored_run(0, std::span(c).first(3), bytes(buf).first(349)).error().code, EINVAL);
}

}  // namespace
}  // namespace ferry::storage
