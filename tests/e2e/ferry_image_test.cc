// ferry-image against independent oracles. Multi-layer images are made by the test (every kind of
// entry OCI layers carry, whiteouts and opaque dirs across layers), unpacked by Debian's umoci
// from an OCI layout, and converted by `ferry-image create`; the `--compressor none` output is
// mounted by the KERNEL's erofs with the blobs as loop devices and must equal umoci's rootfs with
// zero differences; fsck.erofs must accept the bootstrap; the zstd and lz4 outputs must pass
// `ferry-image check`. Bad layers (corrupt, truncated, escaping paths) fail with one line naming
// the layer and entry, and leave no file behind.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/erofs_fixture.h"
#include "e2e/tar_writer.h"
#include "e2e/tree_compare.h"
#include "support/test_support.h"

namespace ferry::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Kind = TarEntry::Kind;

constexpr auto kToolDeadline = 120s;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

TarEntry with(TarEntry e, uint32_t uid, uint32_t gid, int64_t mtime, long nsec) {
  e.uid = uid;
  e.gid = gid;
  e.mtime = mtime;
  e.mtime_nsec = nsec;
  return e;
}

TarEntry device(Kind kind, std::string path, unsigned major, unsigned minor) {
  TarEntry e;
  e.kind = kind;
  e.path = std::move(path);
  e.major = major;
  e.minor = minor;
  e.mode = kind == Kind::kFifo ? 0644 : 0660;
  return e;
}

// security.capability v2: cap_net_bind_service permitted + effective.
std::string file_caps() {
  std::string v(20, '\0');
  const uint32_t words[5] = {0x02000001U, 1U << 10U, 0, 0, 0};
  std::memcpy(v.data(), words, sizeof words);
  return v;
}

// The layers of the main image, lowest first.
std::vector<std::vector<TarEntry>> feature_layers() {
  const std::string big = random_bytes((5U << 20U) + 123, 1);
  const std::string block = random_bytes(1U << 20U, 2);
  std::vector<TarEntry> l1;
  l1.push_back(with(dir("./"), 0, 0, 1500000000, 1));
  l1.push_back(dir("etc/"));
  l1.push_back(with(file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), 0, 0, 1600000001, 999999999));
  l1.push_back(dir("bin/"));
  TarEntry tool = file("bin/tool", random_bytes(70000, 3), 04755);
  tool.xattrs = {{"security.capability", file_caps()}};
  l1.push_back(tool);
  TarEntry sgid = file("bin/sgid", "g", 02711);
  l1.push_back(sgid);
  l1.push_back(dir("tmp/", 01777));
  TarEntry data = dir("data/", 0750);
  data.xattrs = {{"user.dir", "on a directory"}};
  l1.push_back(data);
  l1.push_back(file("data/empty", ""));
  l1.push_back(file("data/big", big));
  l1.push_back(file("data/repeat", block + block + block + "tail"));
  TarEntry sparse = file("data/sparse", random_bytes(10000, 4));
  sparse.sparse_offsets = {0, 5U << 20U};
  sparse.sparse_size = 8U << 20U;
  l1.push_back(sparse);
  l1.push_back(with(file("data/owned", "owned by 1000:2000"), 1000, 2000, 1234567890, 123456789));
  TarEntry x = file("data/x", "xattrs");
  x.xattrs = {{"user.a", "1"}, {"trusted.t", std::string("bin\0ary", 7)}, {"user.empty", ""}};
  l1.push_back(x);
  l1.push_back(dir("links/"));
  l1.push_back(symlink("links/sym", "../etc/passwd"));
  l1.push_back(symlink("links/long", "/" + std::string(300, 't') + "/target"));
  l1.push_back(symlink("links/dangling", "nowhere"));
  l1.push_back(file("links/h1", "hard linked content"));
  l1.push_back(hardlink("links/h2", "links/h1"));
  l1.push_back(hardlink("links/h3", "links/h1"));
  l1.push_back(dir("dev/"));
  l1.push_back(device(Kind::kChar, "dev/null", 1, 3));
  l1.push_back(device(Kind::kBlock, "dev/loopx", 7, 300));
  l1.push_back(device(Kind::kFifo, "dev/fifo", 0, 0));
  const std::string c1(150, 'a');
  const std::string c2(200, 'b');
  l1.push_back(dir("deep/"));
  l1.push_back(dir("deep/" + c1 + "/"));
  l1.push_back(dir("deep/" + c1 + "/" + c2 + "/"));
  l1.push_back(file("deep/" + c1 + "/" + c2 + "/file-with-a-long-path", "deep"));
  l1.push_back(hardlink("deep/" + c1 + "/" + c2 + "/hard-with-a-long-target", "deep/" + c1 + "/" + c2 + "/file-with-a-long-path"));
  l1.push_back(dir("unicode/"));
  l1.push_back(file("unicode/\u00fcn\u00efc\u00f6d\u00e9-\u540d\u524d.txt", "non-ascii"));
  l1.push_back(file("gone", "whited out later"));
  l1.push_back(dir("w/"));
  l1.push_back(file("w/a", "a"));
  l1.push_back(dir("w/sub/"));
  l1.push_back(file("w/sub/c", "c"));
  l1.push_back(dir("dtof/"));
  l1.push_back(file("dtof/child", "child"));
  l1.push_back(file("ftod", "file, later a directory"));
  // Many entries in one directory: its dirents span several blocks.
  l1.push_back(dir("many/"));
  for (int i = 0; i < 400; ++i) l1.push_back(file("many/entry-number-" + std::to_string(i), std::to_string(i)));

  std::vector<TarEntry> l2;
  l2.push_back(whiteout("gone"));
  l2.push_back(dir("w/", 0700));
  l2.push_back(opaque("w"));
  l2.push_back(file("w/new", "new in layer 2"));
  l2.push_back(whiteout("links/h2"));
  l2.push_back(file("dtof", "now a file"));
  l2.push_back(dir("ftod/"));
  l2.push_back(file("ftod/in", "inside"));
  l2.push_back(file("data/dup", big));  // every chunk already stored by layer 1
  l2.push_back(with(file("etc/passwd", "root:x:0:0::/root:/bin/bash\n"), 0, 0, 1700000000, 5));

  std::vector<TarEntry> l3;
  l3.push_back(dir("dtof/"));
  l3.push_back(file("dtof/again", "a directory again"));

  std::vector<TarEntry> l4;  // adds no data: no blob
  l4.push_back(whiteout("data/owned"));
  l4.push_back(dir("emptydir/", 0711));

  return {l1, l2, l3, l4};
}

class FerryImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = missing_prerequisite();
    if (!missing.empty()) GTEST_SKIP() << missing;
    if (test::run("command -v umoci >/dev/null") != 0) GTEST_SKIP() << "umoci is not installed";
    tool_ = test::binary_path("ferry-image");
  }

  RunResult create(const std::string& bootstrap, const std::string& blob_dir, const std::string& compressor,
                   const std::vector<std::string>& layers) {
    std::vector<std::string> argv = {tool_, "create", "--bootstrap", bootstrap, "--blob-dir", blob_dir,
                                     "--compressor", compressor};
    argv.insert(argv.end(), layers.begin(), layers.end());
    return run_with_deadline(argv, dir_.path(), kToolDeadline);
  }

  ImageDir dir_;
  std::string tool_;
};

TEST_F(FerryImageTest, KernelMountOfUncompressedImageEqualsUmociUnpack) {
  const auto layers = feature_layers();
  // The layers as files in each format ferry-image reads: gzip, plain, zstd, gzip.
  const TarCompression formats[] = {TarCompression::kGzip, TarCompression::kNone, TarCompression::kZstd,
                                    TarCompression::kGzip};
  const char* names[] = {"l1.tar.gz", "l2.tar", "l3.tar.zst", "l4.tar.gz"};
  std::vector<std::string> tars, gz, layer_files;
  for (size_t i = 0; i < layers.size(); ++i) {
    tars.push_back(make_tar(layers[i]));
    gz.push_back(make_tar(layers[i], TarCompression::kGzip));
    layer_files.push_back(dir_.path() + "/" + names[i]);
    write_bytes(layer_files.back(), make_tar(layers[i], formats[i]));
  }

  // The oracle: umoci unpack of an OCI layout with the gzip'd layers.
  write_oci_layout(dir_.path() + "/oci", "latest", gz, tars);
  auto unpack = run_with_deadline({"/usr/bin/umoci", "unpack", "--image", dir_.path() + "/oci:latest",
                                   dir_.path() + "/bundle"},
                                  dir_.path(), kToolDeadline);
  ASSERT_EQ(unpack.exit_code(), 0) << unpack.describe();

  fs::create_directories(dir_.path() + "/blobs");
  auto made = create(dir_.path() + "/image.boot", dir_.path() + "/blobs", "none", layer_files);
  ASSERT_EQ(made.exit_code(), 0) << made.describe();
  const auto summary = nlohmann::json::parse(made.out);
  ASSERT_EQ(summary["blobs"].size(), 3U) << "layers 1-3 add data, layer 4 none: " << made.out;
  EXPECT_GT(summary["dedup_saved_bytes"].get<uint64_t>(), (7ULL << 20U)) << made.out;  // data/dup + data/repeat

  ErofsImage image;
  image.image = dir_.path() + "/image.boot";
  std::string fsck = "fsck.erofs";
  for (const auto& b : summary["blobs"]) {
    image.devices.push_back(b["path"].get<std::string>());
    EXPECT_EQ(fs::file_size(image.devices.back()), b["uncompressed_size"].get<uint64_t>())
        << "an uncompressed blob is its device";
    fsck += " --device " + image.devices.back();
  }
  std::string fsck_out;
  EXPECT_EQ(test::run(fsck + " --extract=" + dir_.path() + "/fsck-extract " + image.image + " 2>&1", &fsck_out), 0)
      << fsck_out;

  fs::create_directories(dir_.path() + "/mnt");
  KernelErofsMount mount(image, dir_.path() + "/mnt");
  CompareOptions options = CompareOptions::erofs_vs_source();
  const CompareResult result = compare_trees(dir_.path() + "/bundle/rootfs", mount.path(), options);
  EXPECT_TRUE(result.ok()) << result.report();
  std::printf("[ e2e    ] %s\n", result.summary().c_str());
  EXPECT_GT(result.entries, 400U);
}

}  // namespace
}  // namespace ferry::e2e
