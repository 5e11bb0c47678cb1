// ferry-image against independent oracles. Multi-layer images are made by the test (every kind of
// entry OCI layers carry, whiteouts and opaque dirs across layers), unpacked by Debian's umoci
// from an OCI layout, and converted by `ferry-image create`; the `--compressor none` output is
// mounted by the KERNEL's erofs with the blobs as loop devices and must equal umoci's rootfs with
// zero differences; fsck.erofs must accept the bootstrap; the zstd and lz4 outputs must pass
// `ferry-image check`. Bad layers (corrupt, truncated, escaping paths) fail with one line naming
// the layer and entry, and leave no file behind.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/erofs_fixture.h"
#include "e2e/feature_layers.h"
#include "e2e/tar_writer.h"
#include "e2e/tree_compare.h"
#include "support/test_support.h"

namespace ferry::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kToolDeadline = 120s;

class FerryImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = missing_prerequisite();
    if (!missing.empty()) GTEST_SKIP() << missing;
    if (test::run_shell("command -v umoci >/dev/null") != 0) GTEST_SKIP() << "umoci is not installed";
    tool_ = test::binary_path("ferry-image");
  }

  RunResult create(const std::string& bootstrap, const std::string& blob_dir, const std::string& compressor,
                   const std::vector<std::string>& layers) {
    std::vector<std::string> argv = {tool_,        "create", "--bootstrap",  bootstrap,
                                     "--blob-dir", blob_dir, "--compressor", compressor};
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
  auto unpack = run_with_deadline(
      {"/usr/bin/umoci", "unpack", "--image", dir_.path() + "/oci:latest", dir_.path() + "/bundle"},
      dir_.path(), kToolDeadline);
  ASSERT_EQ(unpack.exit_code(), 0) << unpack.describe();

  fs::create_directories(dir_.path() + "/blobs");
  auto made = create(dir_.path() + "/image.boot", dir_.path() + "/blobs", "none", layer_files);
  ASSERT_EQ(made.exit_code(), 0) << made.describe();
  const auto summary = nlohmann::json::parse(made.out);
  ASSERT_EQ(summary["blobs"].size(), 3U) << "layers 1-3 add data, layer 4 none: " << made.out;
  EXPECT_GT(summary["dedup_saved_bytes"].get<uint64_t>(), (7ULL << 20U))
      << made.out;  // data/dup + data/repeat

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
  EXPECT_EQ(
      test::run_shell(fsck + " --extract=" + dir_.path() + "/fsck-extract " + image.image + " 2>&1", &fsck_out), 0)
      << fsck_out;

  fs::create_directories(dir_.path() + "/mnt");
  KernelErofsMount mount(image, dir_.path() + "/mnt");
  CompareOptions options = CompareOptions::erofs_vs_source();
  const CompareResult result = compare_trees(dir_.path() + "/bundle/rootfs", mount.path(), options);
  EXPECT_TRUE(result.ok()) << result.report();
  std::printf("[ e2e    ] %s\n", result.summary().c_str());
  EXPECT_GT(result.entries, 400U);

  // ferryd serves the same image from the blob directory (localfs `dir`: blob TAG at DIR/TAG).
  write_bytes(dir_.path() + "/ferryd.json", backend_config_json("localfs", "dir", dir_.path() + "/blobs"));
  fs::create_directories(dir_.path() + "/fuse");
  FerrydMount ferryd(dir_.path() + "/fuse", image.image, dir_.path() + "/ferryd.json",
                     dir_.path() + "/ferryd.log");
  const std::string not_mounted = ferryd.wait_mounted(20s);
  ASSERT_TRUE(not_mounted.empty()) << not_mounted;
  const CompareResult served = compare_trees(mount.path(), ferryd.path(), CompareOptions::strict());
  EXPECT_TRUE(served.ok()) << served.report();
}

// The same layers with zstd and lz4: smaller blobs at the same device offsets, every chunk
// verified by `ferry-image check`, and a damaged blob found.
TEST_F(FerryImageTest, CompressedImagesPassCheckAndDamageIsFound) {
  std::vector<std::string> layer_files;
  for (const auto& layer : feature_layers()) {
    layer_files.push_back(dir_.path() + "/l" + std::to_string(layer_files.size() + 1) + ".tar.gz");
    write_bytes(layer_files.back(), make_tar(layer, TarCompression::kGzip));
  }
  std::map<std::string, nlohmann::json> summaries;
  for (const std::string compressor : {"none", "zstd", "lz4"}) {
    const std::string blobs = dir_.path() + "/blobs-" + compressor;
    fs::create_directories(blobs);
    const std::string boot = dir_.path() + "/" + compressor + ".boot";
    auto made = create(boot, blobs, compressor, layer_files);
    ASSERT_EQ(made.exit_code(), 0) << made.describe();
    summaries[compressor] = nlohmann::json::parse(made.out);
    auto check = run_with_deadline({tool_, "check", boot, "--blob-dir", blobs}, dir_.path(), kToolDeadline);
    EXPECT_EQ(check.exit_code(), 0) << compressor << ": " << check.describe();
    EXPECT_NE(check.out.find(std::to_string(summaries[compressor]["chunks"]["stored"].get<uint64_t>()) +
                             " chunks verified"),
              std::string::npos)
        << check.out;
    auto inspect = run_with_deadline({tool_, "inspect", boot, "--tree"}, dir_.path(), kToolDeadline);
    EXPECT_EQ(inspect.exit_code(), 0) << inspect.describe();
    EXPECT_NE(inspect.out.find("lrwxrwxrwx 1 0:0 13 /links/sym -> ../etc/passwd"), std::string::npos)
        << inspect.out;
    EXPECT_NE(inspect.out.find("-rw-r--r-- 2 0:0 19 /links/h1"), std::string::npos) << inspect.out;
    EXPECT_NE(inspect.out.find("dedup saved " +
                               std::to_string(summaries[compressor]["dedup_saved_bytes"].get<uint64_t>()) +
                               " bytes"),
              std::string::npos)
        << inspect.out;
  }
  const auto& none = summaries["none"]["blobs"];
  for (const std::string compressor : {"zstd", "lz4"}) {
    const auto& blobs = summaries[compressor]["blobs"];
    // Compressed or not, the devices are laid out alike: fsck.erofs checks the compressed
    // image's bootstrap (and extracts every file) with the uncompressed image's blobs.
    std::string fsck = "fsck.erofs";
    for (const auto& b : none) fsck += " --device " + b["path"].get<std::string>();
    std::string fsck_out;
    EXPECT_EQ(test::run_shell(fsck + " --extract=" + dir_.path() + "/extract-" + compressor + " " + dir_.path() +
                            "/" + compressor + ".boot 2>&1",
                        &fsck_out),
              0)
        << compressor << ": " << fsck_out;
    ASSERT_EQ(blobs.size(), none.size()) << compressor;
    for (size_t i = 0; i < blobs.size(); ++i) {
      EXPECT_EQ(blobs[i]["uncompressed_size"], none[i]["uncompressed_size"]) << compressor << " blob " << i;
    }
    // Hundreds of small text files: compression must pay in layer 1.
    EXPECT_LT(blobs[0]["size"].get<uint64_t>(), none[0]["size"].get<uint64_t>()) << compressor;
  }

  // One flipped byte in the middle of a zstd blob: check names the blob, exit status 1.
  const std::string victim = summaries["zstd"]["blobs"][0]["path"].get<std::string>();
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    c = static_cast<char>(c ^ 0x5A);
    f.write(&c, 1);
  }
  auto check = run_with_deadline(
      {tool_, "check", dir_.path() + "/zstd.boot", "--blob-dir", dir_.path() + "/blobs-zstd"}, dir_.path(),
      kToolDeadline);
  EXPECT_EQ(check.exit_code(), 1) << check.describe();
  EXPECT_NE(check.err.find(fs::path(victim).filename().string()), std::string::npos) << check.err;
}

TEST_F(FerryImageTest, APrefetchListIsStoredInTheBootstrapAndItsPathsAreChecked) {
  std::vector<std::string> layers;
  for (const auto& layer : feature_layers()) {
    layers.push_back(dir_.path() + "/l" + std::to_string(layers.size() + 1) + ".tar");
    write_bytes(layers.back(), make_tar(layer, TarCompression::kNone));
  }
  const std::string blobs = dir_.path() + "/blobs";
  fs::create_directories(blobs);
  const std::string list = dir_.path() + "/prefetch.txt";
  write_bytes(list, "# what the entrypoint reads first\n/etc/passwd\n\nlinks\n");
  auto with_list = [&](const std::string& boot) {
    std::vector<std::string> argv = {tool_, "create", "--bootstrap", boot, "--blob-dir", blobs, "--prefetch-files", list};
    argv.insert(argv.end(), layers.begin(), layers.end());
    return run_with_deadline(argv, dir_.path(), kToolDeadline);
  };
  const std::string boot = dir_.path() + "/p.boot";
  auto made = with_list(boot);
  ASSERT_EQ(made.exit_code(), 0) << made.describe();
  const auto prefetch_chunks = nlohmann::json::parse(made.out)["prefetch_chunks"].get<uint64_t>();
  EXPECT_GE(prefetch_chunks, 2U);  // /etc/passwd and the files under /links (one is a hard link to it)
  auto inspect = run_with_deadline({tool_, "inspect", boot}, dir_.path(), kToolDeadline);
  EXPECT_EQ(inspect.exit_code(), 0) << inspect.describe();
  EXPECT_NE(inspect.out.find("prefetch list: " + std::to_string(prefetch_chunks) + " chunks"), std::string::npos)
      << inspect.out;
  auto check = run_with_deadline({tool_, "check", boot, "--blob-dir", blobs}, dir_.path(), kToolDeadline);
  EXPECT_EQ(check.exit_code(), 0) << check.describe();

  // A path the image does not have: one line naming it, nothing written.
  write_bytes(list, "/etc/passwd\n/no/such/file\n");
  const std::string bad_boot = dir_.path() + "/bad.boot";
  auto refused = with_list(bad_boot);
  EXPECT_NE(refused.exit_code(), 0);
  EXPECT_NE(refused.err.find("prefetch path '/no/such/file' is not in the image"), std::string::npos)
      << refused.describe();
  EXPECT_FALSE(fs::exists(bad_boot));
}

TEST_F(FerryImageTest, HelpDescribesEveryCommand) {
  auto top = run_with_deadline({tool_, "--help"}, dir_.path(), kToolDeadline);
  EXPECT_EQ(top.exit_code(), 0) << top.describe();
  for (const char* command : {"create", "inspect", "check", "convert"})
    EXPECT_NE(top.out.find(command), std::string::npos);
  auto convert_help = run_with_deadline({tool_, "convert", "--help"}, dir_.path(), kToolDeadline);
  EXPECT_EQ(convert_help.exit_code(), 0);
  for (const char* option : {"--source", "--target", "--compressor", "--chunk-size", "--plain-http",
                             "--authfile", "--source-creds", "--target-creds"}) {
    EXPECT_NE(convert_help.out.find(option), std::string::npos) << option;
  }
  auto no_target = run_with_deadline({tool_, "convert", "--source", "oci:/x:v1"}, dir_.path(), kToolDeadline);
  EXPECT_EQ(no_target.exit_code(), 2) << no_target.describe();
  auto create_help = run_with_deadline({tool_, "create", "--help"}, dir_.path(), kToolDeadline);
  EXPECT_EQ(create_help.exit_code(), 0);
  for (const char* option : {"--bootstrap", "--blob-dir", "--compressor", "--chunk-size", "LAYER"}) {
    EXPECT_NE(create_help.out.find(option), std::string::npos) << option;
  }
  auto wrong = run_with_deadline({tool_, "create", "--bootstrap", "x"}, dir_.path(), kToolDeadline);
  EXPECT_EQ(wrong.exit_code(), 2) << wrong.describe();
  auto bad_chunk =
      create(dir_.path() + "/x.boot", dir_.path(), "zstd", {"--chunk-size", "5000", "/dev/null"});
  EXPECT_EQ(bad_chunk.exit_code(), 1) << bad_chunk.describe();
  EXPECT_NE(bad_chunk.err.find("chunk size 5000"), std::string::npos) << bad_chunk.err;
}

struct BadLayer {
  std::string name;
  std::string bytes;         // the last layer's file
  std::string expect_entry;  // must appear in the error
};

// Every way a layer can be unusable: one line on stderr naming the layer and the entry, exit
// status 1, and nothing left in the blob directory or at the bootstrap path.
TEST_F(FerryImageTest, BadLayersFailWithOneLineAndLeaveNothing) {
  const std::string good =
      make_tar({dir("d/"), file("d/f", random_bytes(3U << 20U, 9))}, TarCompression::kGzip);
  const std::string big_tar = make_tar({file("payload", random_bytes(2U << 20U, 10)), file("after", "x")});
  // Random data is stored, not deflated, by gzip: only the CRC-32 in the trailer can tell.
  std::string corrupt_gz = make_tar({file("a", random_bytes(100000, 11))}, TarCompression::kGzip);
  corrupt_gz[corrupt_gz.size() / 2] = static_cast<char>(corrupt_gz[corrupt_gz.size() / 2] ^ 0xFF);
  std::string bad_trailer = make_tar({file("a", std::string(100000, 'a'))}, TarCompression::kGzip);
  bad_trailer[bad_trailer.size() - 5] = static_cast<char>(bad_trailer[bad_trailer.size() - 5] ^ 0xFF);
  // (A zstd frame without a checksum, as libarchive writes them, cannot tell a flipped byte in a
  // stored block: the registry digest covers that. A cut is always found.)
  const std::string zst = make_tar({file("a", random_bytes(100000, 12))}, TarCompression::kZstd);
  const std::string text_gz =
      make_tar({file("a", std::string(300000, 'q') + random_bytes(1000, 13))}, TarCompression::kGzip);
  const std::vector<BadLayer> cases = {
      {"dotdot", make_tar({file("ok", "1"), file("a/../../escape", "x")}), "a/../../escape"},
      {"absolute", make_tar({file("/etc/abs", "x")}), "/etc/abs"},
      {"hardlink-escape", make_tar({file("ok", "1"), hardlink("h", "../../etc/shadow")}), "'h'"},
      {"hardlink-missing", make_tar({hardlink("h", "nothing")}), "'h'"},
      {"truncated-data", big_tar.substr(0, big_tar.size() / 2), "payload"},
      {"truncated-header", big_tar.substr(0, (2U << 20U) + 512 + 100), "after entry 'payload'"},
      {"corrupt-gzip", corrupt_gz, "gzip"},
      {"gzip-trailer", bad_trailer, "gzip"},
      {"truncated-gzip", text_gz.substr(0, text_gz.size() - 20), "gzip"},
      {"truncated-zstd", zst.substr(0, zst.size() - 20), "zstd"},
      {"not-a-tar", std::string(4096, 'z'), "layer 2"},
  };
  for (const BadLayer& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string work = dir_.path() + "/" + c.name;
    fs::create_directories(work + "/blobs");
    write_bytes(work + "/l1.tar.gz", good);
    write_bytes(work + "/l2.tar", c.bytes);
    auto made =
        create(work + "/image.boot", work + "/blobs", "zstd", {work + "/l1.tar.gz", work + "/l2.tar"});
    EXPECT_EQ(made.exit_code(), 1) << made.describe();
    EXPECT_TRUE(made.out.empty()) << made.out;
    EXPECT_EQ(std::count(made.err.begin(), made.err.end(), '\n'), 1) << made.err;
    EXPECT_NE(made.err.find("layer 2 (" + work + "/l2.tar)"), std::string::npos) << made.err;
    EXPECT_NE(made.err.find(c.expect_entry), std::string::npos) << made.err;
    EXPECT_FALSE(fs::exists(work + "/image.boot"));
    EXPECT_TRUE(fs::is_empty(work + "/blobs")) << "left behind in " << work << "/blobs";
    EXPECT_EQ(std::distance(fs::directory_iterator(work), fs::directory_iterator()), 3)
        << "a temporary file left in " << work;
  }
}

}  // namespace
}  // namespace ferry::e2e
