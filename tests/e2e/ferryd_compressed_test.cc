// ferryd serving compressed Ferry images, against independent oracles. The multi-layer image of
// ferry_image_test (feature_layers) plus a layer of compressible data is unpacked by Debian's
// umoci and converted by `ferry-image create` with zstd and lz4; ferryd (localfs `dir`, a real
// FUSE mount) must show umoci's tree with zero differences. A damaged chunk gives EIO, with one
// log line naming the blob and the chunk, on the files that use it, while the rest still read.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "e2e/erofs_fixture.h"
#include "e2e/feature_layers.h"
#include "e2e/fs_util.h"
#include "e2e/tree_compare.h"
#include "erofs/chunk_table.h"
#include "erofs/erofs_image.h"
#include "storage/local_file.h"
#include "support/test_support.h"

namespace ferry::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kToolDeadline = 120s;
constexpr uint64_t kChunk = 1U << 20U;

// Text-like bytes that zstd and lz4 shrink, several chunks long.
std::string compressible(size_t n, uint64_t seed) {
  const std::string random = random_bytes(n, seed);
  std::string out(n, 'a');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>('a' + static_cast<unsigned char>(random[i]) % 8);
  return out;
}

std::vector<TarEntry> text_layer() {
  return {dir("text/"), file("text/big.txt", compressible(3 * kChunk + 777, 41)),
          file("text/copy.txt", compressible(3 * kChunk + 777, 41)),  // same chunks: deduplicated
          file("text/small.txt", compressible(9000, 42))};
}

// Where the stored bytes of chunk `k` of `path` lie: its blob file and range.
struct StoredChunk {
  std::string blob;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t table_index = 0;
};

StoredChunk stored_chunk(const std::string& bootstrap, const std::string& blob_dir, const std::string& path,
                         uint64_t k) {
  auto meta = storage::LocalFile::open(bootstrap, true);
  if (!meta.ok()) throw std::runtime_error(meta.error().message);
  auto table = erofs::load_chunk_table(**meta);
  if (!table.ok() || !table->has_value()) throw std::runtime_error("no chunk table in " + bootstrap);
  auto image = erofs::ErofsImage::open(
      *meta, [&](const erofs::DeviceSlot& slot) -> Result<std::shared_ptr<const ByteSource>> {
        auto f = storage::LocalFile::open(blob_dir + "/" + slot.tag, false);
        if (!f.ok()) return f.error();
        return std::shared_ptr<const ByteSource>(*f);
      });
  if (!image.ok()) throw std::runtime_error(image.error().message);
  uint64_t nid = (*image)->superblock().root_nid;
  std::stringstream parts(path);
  for (std::string part; std::getline(parts, part, '/');) {
    auto dir_inode = (*image)->inode(nid);
    auto next = (*image)->lookup(*dir_inode, part);
    if (!next.ok()) throw std::runtime_error("no " + path + " in " + bootstrap);
    nid = *next;
  }
  auto inode = (*image)->inode(nid);
  auto places = erofs::chunk_places(**image, *inode);
  if (!places.ok() || places->size() <= k)
    throw std::runtime_error(path + " has no chunk " + std::to_string(k));
  const auto& place = (*places)[k];
  const erofs::ChunkInfo* c = (**table).find(place.device_id, uint64_t{place.blkaddr} * 4096);
  if (c == nullptr) throw std::runtime_error("chunk table has no record for chunk " + std::to_string(k));
  const auto& blob = (**table).blobs[place.device_id - 1U];
  return {blob_dir + "/" + erofs::digest_hex(blob.digest), c->blob_offset, c->stored_size,
          static_cast<uint64_t>(c - (**table).chunks.data())};
}

size_t count_lines_with(const std::string& text, const std::string& needle) {
  size_t n = 0;
  std::stringstream lines(text);
  for (std::string line; std::getline(lines, line);) n += line.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

class FerrydCompressedTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string missing = missing_prerequisite();
    if (!missing.empty()) GTEST_SKIP() << missing;
    if (test::run_shell("command -v umoci >/dev/null") != 0) GTEST_SKIP() << "umoci is not installed";
    auto layers = feature_layers();
    layers.push_back(text_layer());
    std::vector<std::string> tars, gz;
    for (const auto& layer : layers) {
      tars.push_back(make_tar(layer));
      gz.push_back(make_tar(layer, TarCompression::kGzip));
      layer_files_.push_back(dir_.path() + "/l" + std::to_string(layer_files_.size() + 1) + ".tar.gz");
      write_bytes(layer_files_.back(), gz.back());
    }
    write_oci_layout(dir_.path() + "/oci", "latest", gz, tars);
    auto unpack = run_with_deadline(
        {"/usr/bin/umoci", "unpack", "--image", dir_.path() + "/oci:latest", dir_.path() + "/bundle"},
        dir_.path(), kToolDeadline);
    ASSERT_EQ(unpack.exit_code(), 0) << unpack.describe();
    fs::create_directories(blobs());
    std::vector<std::string> argv = {test::binary_path("ferry-image"),
                                     "create",
                                     "--bootstrap",
                                     boot(),
                                     "--blob-dir",
                                     blobs(),
                                     "--compressor",
                                     GetParam()};
    argv.insert(argv.end(), layer_files_.begin(), layer_files_.end());
    auto made = run_with_deadline(argv, dir_.path(), kToolDeadline);
    ASSERT_EQ(made.exit_code(), 0) << made.describe();
    summary_ = nlohmann::json::parse(made.out);
    write_bytes(config(), backend_config_json("localfs", "dir", blobs()));
  }
  std::string boot() const { return dir_.path() + "/image.boot"; }
  std::string blobs() const { return dir_.path() + "/blobs"; }
  std::string config() const { return dir_.path() + "/ferryd.json"; }
  std::string rootfs() const { return dir_.path() + "/bundle/rootfs"; }

  ImageDir dir_;
  std::vector<std::string> layer_files_;
  nlohmann::json summary_;
};

TEST_P(FerrydCompressedTest, ServedImageEqualsUmociUnpack) {
  // The blobs really are compressed: smaller than their devices.
  uint64_t stored = 0, device = 0;
  for (const auto& b : summary_["blobs"]) {
    stored += b["size"].get<uint64_t>();
    device += b["uncompressed_size"].get<uint64_t>();
  }
  EXPECT_LT(stored, device) << summary_.dump();
  fs::create_directories(dir_.path() + "/mnt");
  FerrydMount ferryd(dir_.path() + "/mnt", boot(), config(), dir_.path() + "/ferryd.log");
  const std::string not_mounted = ferryd.wait_mounted(20s);
  ASSERT_TRUE(not_mounted.empty()) << not_mounted;
  const CompareResult result = compare_trees(rootfs(), ferryd.path(), CompareOptions::erofs_vs_source());
  EXPECT_TRUE(result.ok()) << result.report() << "\n" << ferryd.log();
  std::printf("[ e2e    ] %s: %s\n", GetParam().c_str(), result.summary().c_str());
  EXPECT_GT(result.entries, 400U);
  EXPECT_GT(result.bytes_compared, 20U << 20U);
}

TEST_P(FerrydCompressedTest, DamagedChunkIsEioWithOneLogLineOtherFilesRead) {
  // Chunk 1 of text/big.txt (compressed; text/copy.txt uses the same stored chunk).
  const StoredChunk victim = stored_chunk(boot(), blobs(), "text/big.txt", 1);
  ASSERT_EQ(stored_chunk(boot(), blobs(), "text/copy.txt", 1).table_index, victim.table_index);
  ASSERT_LT(victim.size, kChunk) << "the chunk should be stored compressed";
  {
    std::fstream f(victim.blob, std::ios::in | std::ios::out | std::ios::binary);
    const auto at = static_cast<std::streamoff>(victim.offset + victim.size / 2);
    char c = 0;
    f.seekg(at);
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5A);
    f.seekp(at);
    f.write(&c, 1);
    ASSERT_TRUE(f.good());
  }
  fs::create_directories(dir_.path() + "/mnt");
  const std::string log = dir_.path() + "/ferryd.log";
  FerrydMount ferryd(dir_.path() + "/mnt", boot(), config(), log);
  const std::string not_mounted = ferryd.wait_mounted(20s);
  ASSERT_TRUE(not_mounted.empty()) << not_mounted;
  const std::string mnt = ferryd.path();
  const std::string digest = fs::path(victim.blob).filename().string();

  EXPECT_EQ(direct_read(mnt + "/text/big.txt", kChunk + 8192), EIO);
  const std::string chunk_name = "chunk " + std::to_string(victim.table_index);
  ASSERT_TRUE(test::wait_until([&] { return count_lines_with(ferryd.log(), chunk_name) >= 1; }, 5s))
      << ferryd.log();
  EXPECT_EQ(count_lines_with(ferryd.log(), chunk_name), 1U) << ferryd.log();
  EXPECT_EQ(count_lines_with(ferryd.log(), digest + " " + chunk_name), 1U)
      << "the line names the blob and the chunk: " << ferryd.log();
  EXPECT_EQ(direct_read(mnt + "/text/copy.txt", kChunk + 4096 * 3), EIO) << "the other file of that chunk";
  // A buffered read of the whole file fails too: never wrong bytes.
  {
    const int fd = ::open((mnt + "/text/big.txt").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::vector<char> buf(64 * 1024);
    uint64_t total = 0;
    ssize_t n = 0;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) total += static_cast<uint64_t>(n);
    const int err = n < 0 ? errno : 0;
    ::close(fd);
    EXPECT_EQ(err, EIO) << "after " << total << " bytes";
    EXPECT_LE(total, 2 * kChunk) << "a read through the damaged chunk returned data";
  }
  // The other chunks of that file, and the other files, still read right.
  const std::string want = compressible(3 * kChunk + 777, 41);
  for (uint64_t off : {uint64_t{0}, 2 * kChunk + 4096, 3 * kChunk}) {
    std::string got;
    EXPECT_EQ(direct_read(mnt + "/text/big.txt", off, &got), 0) << off;
    EXPECT_EQ(got, want.substr(off, 4096)) << off;
  }
  std::string small;
  ASSERT_TRUE(read_text_file(mnt + "/text/small.txt", &small));
  EXPECT_EQ(small, compressible(9000, 42));
  std::string passwd;
  ASSERT_TRUE(read_text_file(mnt + "/etc/passwd", &passwd));
  EXPECT_EQ(passwd, "root:x:0:0::/root:/bin/bash\n");
  std::string big;
  ASSERT_TRUE(read_text_file(mnt + "/data/big", &big));
  std::string want_big;
  ASSERT_TRUE(read_text_file(rootfs() + "/data/big", &want_big));
  EXPECT_EQ(big, want_big);
}

// A blob file that is not the chunk table's blob (here: one byte short) is refused when the
// image is opened, with a message naming the file and the blob; nothing is mounted.
TEST_P(FerrydCompressedTest, TruncatedBlobIsRefusedWhenTheImageOpens) {
  const std::string blob = summary_["blobs"][0]["path"].get<std::string>();
  fs::resize_file(blob, fs::file_size(blob) - 1);
  fs::create_directories(dir_.path() + "/mnt");
  FerrydMount ferryd(dir_.path() + "/mnt", boot(), config(), dir_.path() + "/ferryd.log");
  const std::string not_mounted = ferryd.wait_mounted(20s);
  EXPECT_FALSE(not_mounted.empty()) << "mounted an image with a truncated blob";
  EXPECT_FALSE(test::is_mounted(dir_.path() + "/mnt", "fuse"));
  const std::string log = ferryd.log();
  EXPECT_NE(log.find("blob file '" + blob + "' is"), std::string::npos) << log;
  EXPECT_NE(log.find("truncated, or another blob"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Compressors, FerrydCompressedTest, ::testing::Values("zstd", "lz4"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace ferry::e2e
