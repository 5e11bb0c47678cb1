// ferryd's command-line contract at its edges: --version and --help, and every way `ferryd fuse`
// must refuse to start (missing/unreadable/invalid bootstrap, malformed or unusable config,
// unsupported image features, missing or bad mountpoint). Each refusal must be a non-zero exit
// within a deadline, exactly one line on stderr naming the problem, and nothing left mounted.
// Also: SIGINT unmounts and exits 0, and the optional flags are accepted.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "e2e/erofs_fixture.h"
#include "e2e/fs_util.h"
#include "support/test_support.h"

namespace ferry::e2e {
namespace {

// Trees and images go to tmpfs when it can hold them (see prefer_tmpfs_tmpdir()).
class TmpfsTempDirs : public ::testing::Environment {
 public:
  void SetUp() override { std::printf("[ e2e    ] temp dirs in %s\n", prefer_tmpfs_tmpdir().c_str()); }
};
[[maybe_unused]] ::testing::Environment* const kTmpfsTempDirs =
    ::testing::AddGlobalTestEnvironment(new TmpfsTempDirs);

using namespace std::chrono_literals;

constexpr auto kDeadline = 20s;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

class FerrydCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = missing_prerequisite(); !why.empty()) GTEST_FAIL() << why;
    ASSERT_EQ(::access(ferryd_.c_str(), X_OK), 0) << ferryd_ << " is not built";
    std::filesystem::create_directories(dir_ / "mnt");
    mnt_ = std::filesystem::canonical(dir_ / "mnt").string();
  }

  // A valid, tiny, uncompressed image (built on first use).
  std::string good_image() {
    const std::string img = dir_ / "good.img";
    if (::access(img.c_str(), F_OK) != 0) {
      make_source("good-src", std::string(5000, 'g'));
      run_mkfs({img, dir_ / "good-src"});
    }
    return img;
  }

  void make_source(const std::string& name, const std::string& content) const {
    std::filesystem::create_directories(dir_ / name);
    write_text_file(dir_ / (name + "/file.txt"), content);
  }

  RunResult ferryd(std::vector<std::string> args, std::vector<std::string> prefix = {}) {
    args.insert(args.begin(), ferryd_);
    args.insert(args.begin(), prefix.begin(), prefix.end());
    return run_with_deadline(args, dir_.path(), kDeadline);
  }

  // `ferryd fuse --mountpoint MNT --bootstrap IMAGE [--config CONFIG]`.
  RunResult fuse(const std::string& image, const std::string& config = {},
                 std::vector<std::string> prefix = {}) {
    std::vector<std::string> args = {"fuse", "--mountpoint", mnt_, "--bootstrap", image};
    if (!config.empty()) {
      args.push_back("--config");
      args.push_back(config);
    }
    args.insert(args.begin(), ferryd_);
    args.insert(args.begin(), prefix.begin(), prefix.end());
    // A ferryd that mounts instead of refusing is stopped at once rather than at the deadline.
    return run_with_deadline(args, dir_.path(), kDeadline, [&] { return test::is_mounted(mnt_); });
  }

  // The refusal contract: non-zero exit (not a crash) in time, one stderr line mentioning one of
  // `keywords` (case-insensitive), nothing mounted.
  void expect_refusal(const RunResult& r, const std::vector<std::string>& keywords) const {
    ASSERT_FALSE(r.stopped) << "ferryd mounted " << mnt_ << " instead of refusing to start: " << r.describe();
    ASSERT_FALSE(r.timed_out) << "ferryd did not exit within " << kDeadline.count() << " s: " << r.describe();
    EXPECT_TRUE(r.exited()) << "ferryd did not exit normally: " << r.describe();
    EXPECT_NE(r.exit_code(), 0) << r.describe();
    std::string err = r.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
    EXPECT_FALSE(err.empty()) << "no error on stderr: " << r.describe();
    EXPECT_EQ(err.find('\n'), std::string::npos) << "more than one line on stderr: " << r.describe();
    const std::string text = lower(err);
    bool mentioned = false;
    for (const auto& k : keywords) mentioned = mentioned || text.find(lower(k)) != std::string::npos;
    std::string wanted;
    for (const auto& k : keywords) wanted += " \"" + k + "\"";
    EXPECT_TRUE(mentioned) << "stderr mentions none of" << wanted << ": " << r.describe();
    EXPECT_FALSE(test::is_mounted(mnt_)) << "ferryd left a mount behind at " << mnt_;
  }

  test::TempDir dir_;
  std::string mnt_;
  const std::string ferryd_ = test::binary_path("ferryd");
};

TEST_F(FerrydCliTest, VersionPrintsAVersion) {
  RunResult r = ferryd({"--version"});
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code(), 0) << r.describe();
  EXPECT_TRUE(std::regex_search(r.out + r.err, std::regex("[0-9]+\\.[0-9]+"))) << r.describe();
}

// ferryd-next is the same daemon with package version "<version>+next": upgrade tests rely on
// telling the two builds apart by what they report.
TEST_F(FerrydCliTest, FerrydNextReportsADifferentVersion) {
  const std::string next = test::binary_path("ferryd-next");
  ASSERT_EQ(::access(next.c_str(), X_OK), 0) << next << " is not built";
  RunResult a = ferryd({"--version"});
  RunResult b = run_with_deadline({next, "--version"}, dir_.path(), kDeadline);
  ASSERT_FALSE(a.timed_out);
  ASSERT_FALSE(b.timed_out);
  ASSERT_EQ(a.exit_code(), 0) << a.describe();
  ASSERT_EQ(b.exit_code(), 0) << b.describe();
  EXPECT_NE(a.out + a.err, b.out + b.err) << "ferryd and ferryd-next report the same version";
  std::smatch m;
  const std::string av = a.out + a.err;
  ASSERT_TRUE(std::regex_search(av, m, std::regex("ferryd ([0-9][^ ]*)"))) << a.describe();
  EXPECT_NE((b.out + b.err).find("ferryd " + m[1].str() + "+next"), std::string::npos) << b.describe();
}

TEST_F(FerrydCliTest, HelpExitsZero) {
  RunResult r = ferryd({"--help"});
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code(), 0) << r.describe();
  EXPECT_NE(lower(r.out + r.err).find("fuse"), std::string::npos) << r.describe();
}

TEST_F(FerrydCliTest, FuseHelpListsItsOptions) {
  RunResult r = ferryd({"fuse", "--help"});
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code(), 0) << r.describe();
  for (const char* opt : {"--mountpoint", "--bootstrap", "--config"}) {
    EXPECT_NE((r.out + r.err).find(opt), std::string::npos) << opt << " missing: " << r.describe();
  }
  EXPECT_EQ((r.out + r.err).find("FERRY_TEST"), std::string::npos) << "a test switch in --help: " << r.describe();
}

// Faults are injected by test daemons (tests/daemon/stalling_ferryd.cc), never by a switch that
// a production binary reads from its environment.
TEST(FerrydBinary, CarriesNoTestSwitch) {
  for (const char* name : {"ferryd", "ferryd-next"}) {
    std::string binary = test::read_file(test::binary_path(name));
    ASSERT_FALSE(binary.empty()) << name;
    EXPECT_EQ(binary.find("FERRY_TEST_"), std::string::npos) << name << " names a FERRY_TEST_ variable";
  }
}

TEST_F(FerrydCliTest, MissingBootstrapFile) {
  expect_refusal(fuse(dir_ / "does-not-exist.img"), {"does-not-exist.img", "no such file", "not found"});
}

TEST_F(FerrydCliTest, BootstrapIsADirectory) {
  std::filesystem::create_directories(dir_ / "a-directory");
  expect_refusal(fuse(dir_ / "a-directory"), {"directory", "not a regular file", "eisdir"});
}

TEST_F(FerrydCliTest, UnreadableBootstrap) {
  // Root reads anything, so ferryd runs without the capabilities that bypass file modes.
  const std::string img = dir_ / "unreadable.img";
  std::filesystem::copy_file(good_image(), img);
  ASSERT_EQ(::chmod(img.c_str(), 0), 0);
  RunResult r = fuse(img, {}, {"/usr/bin/setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"});
  expect_refusal(r, {"permission", "denied", "eacces", "unreadable"});
}

TEST_F(FerrydCliTest, EmptyBootstrap) {
  write_text_file(dir_ / "empty.img", "");
  expect_refusal(fuse(dir_ / "empty.img"),
                 {"erofs", "superblock", "magic", "too small", "truncated", "short", "empty", "eof"});
}

TEST_F(FerrydCliTest, BootstrapIsNotAnErofsImage) {
  Rng rng(7);
  write_text_file(dir_ / "garbage.img", rng.bytes(1 << 20));
  expect_refusal(fuse(dir_ / "garbage.img"), {"erofs", "superblock", "magic", "not an"});
}

TEST_F(FerrydCliTest, MalformedConfigJson) {
  write_text_file(dir_ / "bad.json", "{\"device\": {\"backend\": {\"type\": \"localfs\", \"config\": ");
  expect_refusal(fuse(good_image(), dir_ / "bad.json"), {"json", "parse", "syntax"});
}

TEST_F(FerrydCliTest, MissingConfigFile) {
  expect_refusal(fuse(good_image(), dir_ / "missing.json"), {"missing.json", "no such file", "not found"});
}

TEST_F(FerrydCliTest, UnknownBackendType) {
  write_text_file(dir_ / "bogus.json", backend_config_json("bogusfs", "blob_file", dir_ / "x.blob"));
  expect_refusal(fuse(good_image(), dir_ / "bogus.json"), {"bogusfs", "backend"});
}

TEST_F(FerrydCliTest, MissingBlobFile) {
  make_source("blob-src", std::string(100000, 'b'));
  run_mkfs({"--chunksize=4096", "--blobdev=" + (dir_ / "real.blob"), dir_ / "blob.img", dir_ / "blob-src"});
  const std::string config = write_blob_config(dir_ / "blob.json", dir_ / "missing.blob");
  expect_refusal(fuse(dir_ / "blob.img", config), {"missing.blob", "no such file", "not found"});
}

TEST_F(FerrydCliTest, CompressedImageIsUnsupported) {
  std::string text;
  for (int i = 0; text.size() < (1 << 20); ++i) text += "compressible line " + std::to_string(i % 10) + "\n";
  make_source("lz4-src", text);
  run_mkfs({"-zlz4", dir_ / "lz4.img", dir_ / "lz4-src"});
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "lz4.img").c_str(), &st), 0);
  ASSERT_LT(st.st_size, 1 << 19) << "mkfs.erofs -zlz4 did not compress";
  expect_refusal(fuse(dir_ / "lz4.img"), {"compress", "lz4", "unsupported", "feature"});
}

TEST_F(FerrydCliTest, MissingMountpointOption) {
  expect_refusal(ferryd({"fuse", "--bootstrap", good_image()}), {"mountpoint"});
}

TEST_F(FerrydCliTest, MissingBootstrapOption) {
  expect_refusal(ferryd({"fuse", "--mountpoint", mnt_}), {"bootstrap"});
}

TEST_F(FerrydCliTest, NonexistentMountpoint) {
  const std::string nope = dir_ / "nope";
  expect_refusal(ferryd({"fuse", "--mountpoint", nope, "--bootstrap", good_image()}),
                 {"nope", "mountpoint", "no such file"});
  EXPECT_FALSE(std::filesystem::exists(nope)) << "ferryd created the mountpoint";
}

TEST_F(FerrydCliTest, UnknownOption) {
  expect_refusal(ferryd({"fuse", "--mountpoint", mnt_, "--bootstrap", good_image(), "--no-such-option"}),
                 {"no-such-option"});
}

// The happy path's edges: the optional flags are accepted, SIGINT unmounts and exits 0.
TEST_F(FerrydCliTest, SigintUnmountsAndExitsZero) {
  const std::string log_file = dir_ / "ferryd-own.log";
  FerrydMount server(mnt_, good_image(), {}, dir_ / "ferryd.out",
                     {"--thread-num", "2", "--log-level", "info", "--log-file", log_file});
  ASSERT_EQ(server.wait_mounted(kDeadline), "");
  std::string content;
  EXPECT_TRUE(read_text_file(mnt_ + "/file.txt", &content));
  EXPECT_EQ(content, std::string(5000, 'g'));
  server.signal(SIGINT);
  const int status = server.wait_exit(kDeadline);
  ASSERT_NE(status, -1) << "ferryd did not exit within " << kDeadline.count() << " s of SIGINT; output:\n"
                        << server.log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status << "; output:\n"
                                                             << server.log();
  EXPECT_FALSE(test::is_mounted(mnt_)) << "ferryd left its mount behind";
  EXPECT_TRUE(std::filesystem::exists(log_file)) << "--log-file was not written";
}

}  // namespace
}  // namespace ferry::e2e
