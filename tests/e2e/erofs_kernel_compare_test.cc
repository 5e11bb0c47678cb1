// The proof against the kernel. One deterministic tree is built per process; for every mkfs.erofs
// layout its image is mounted with the kernel's EROFS driver and, separately, served by ferryd.
//   KernelErofsMatchesSourceTree: kernel mount vs the source tree (validates builder, comparator
//     and layout; relaxes only what EROFS legitimately changes: directory sizes, and mtimes for -T).
//   FerrydMatchesKernelErofs: ferryd's FUSE mount vs the kernel mount, strictly, then SIGTERM must
//     unmount and exit 0.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "e2e/erofs_fixture.h"
#include "e2e/fs_util.h"
#include "e2e/tree_builder.h"
#include "e2e/tree_compare.h"
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
using Clock = std::chrono::steady_clock;

constexpr auto kMountDeadline = 20s;
constexpr auto kExitDeadline = 15s;
constexpr auto kCompareDeadline = 150s;

long long ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

// The source tree and its images, shared by every test of this process.
struct Shared {
  test::TempDir dir;  // the source tree (tmpfs when it can)
  ImageDir image_dir;
  std::string source;
  TreeStats stats;
  std::string error;  // why the tree could not be built
  std::map<std::string, ErofsImage> images;
  std::map<std::string, std::string> image_errors;
};

class ErofsLayoutTest : public ::testing::TestWithParam<Layout> {
 public:
  static void SetUpTestSuite() {
    shared_ = std::make_unique<Shared>();
    shared_->error = missing_prerequisite();
    if (!shared_->error.empty()) return;
    const auto t0 = Clock::now();
    try {
      shared_->source = shared_->dir / "source";
      shared_->stats = build_tree(shared_->source, TreeSpec::full());
    } catch (const std::exception& e) {
      shared_->error = e.what();
      return;
    }
    std::printf("[ e2e    ] built the source tree: %zu entries, %llu MiB, in %lld ms\n",
                shared_->stats.entries, static_cast<unsigned long long>(shared_->stats.content_bytes >> 20),
                ms_since(t0));
  }

  static void TearDownTestSuite() { shared_.reset(); }

 protected:
  void SetUp() override {
    if (!shared_->error.empty()) GTEST_FAIL() << shared_->error;
  }

  // The image of this test's layout, built once per process.
  static const ErofsImage* image(const Layout& layout) {
    if (auto it = shared_->images.find(layout.name); it != shared_->images.end()) return &it->second;
    if (shared_->image_errors.count(layout.name) != 0) return nullptr;
    const auto t0 = Clock::now();
    try {
      ErofsImage img = make_erofs_image(shared_->source, shared_->image_dir.path(), layout);
      std::printf("[ e2e    ] mkfs.erofs %s: %lld ms\n", layout.name.c_str(), ms_since(t0));
      return &shared_->images.emplace(layout.name, std::move(img)).first->second;
    } catch (const std::exception& e) {
      shared_->image_errors[layout.name] = e.what();
      return nullptr;
    }
  }

  static std::string image_error(const Layout& layout) { return shared_->image_errors[layout.name]; }

  static std::unique_ptr<Shared> shared_;
};

std::unique_ptr<Shared> ErofsLayoutTest::shared_;

std::string make_dir(const test::TempDir& parent, const std::string& name) {
  std::string path = parent / name;
  std::filesystem::create_directories(path);
  return std::filesystem::canonical(path).string();
}

TEST_P(ErofsLayoutTest, KernelErofsMatchesSourceTree) {
  const Layout& layout = GetParam();
  const ErofsImage* img = image(layout);
  ASSERT_NE(img, nullptr) << image_error(layout);
  test::TempDir work;
  std::unique_ptr<KernelErofsMount> kernel;
  try {
    kernel = std::make_unique<KernelErofsMount>(*img, make_dir(work, "kernel"));
  } catch (const std::exception& e) {
    GTEST_FAIL() << e.what();
  }
  CompareOptions options = CompareOptions::erofs_vs_source();
  options.ignore_mtime = layout.fixed_mtime;
  const auto t0 = Clock::now();
  const CompareResult r = compare_trees(shared_->source, kernel->path(), options);
  std::printf("[ e2e    ] source vs kernel (%s): %lld ms; %s\n", layout.name.c_str(), ms_since(t0),
              r.summary().c_str());
  EXPECT_TRUE(r.ok()) << "A = source tree, B = kernel erofs mount\n" << r.report();
  EXPECT_EQ(r.entries, shared_->stats.entries);
  EXPECT_GE(r.bytes_compared, shared_->stats.content_bytes);
}

// Paths whose permission answers (as an unprivileged user) exercise default_permissions.
std::vector<std::string> access_probe_paths(const std::string& source) {
  std::vector<std::string> rels = {"modes",         "owners", "special", "xattrs", "links/relative_file",
                                   "links/dangling"};
  for (const std::string dir : {"modes", "owners", "special", "hardlinks", "times", "modes/d0000"}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(source + "/" + dir, ec)) {
      rels.push_back(dir + "/" + e.path().filename().string());
    }
  }
  return rels;
}

TEST_P(ErofsLayoutTest, FerrydMatchesKernelErofs) {
  const Layout& layout = GetParam();
  const std::string ferryd = test::binary_path("ferryd");
  ASSERT_EQ(::access(ferryd.c_str(), X_OK), 0) << ferryd << " is not built";
  const ErofsImage* img = image(layout);
  ASSERT_NE(img, nullptr) << image_error(layout);
  test::TempDir work;
  std::unique_ptr<KernelErofsMount> kernel;
  try {
    kernel = std::make_unique<KernelErofsMount>(*img, make_dir(work, "kernel"));
  } catch (const std::exception& e) {
    GTEST_FAIL() << e.what();
  }
  std::string config;
  if (!img->blob.empty()) config = write_blob_config(work / "config.json", img->blob);
  FerrydMount fuse(make_dir(work, "fuse"), img->image, config, work / "ferryd.log");
  const auto t0 = Clock::now();
  const std::string mount_error = fuse.wait_mounted(kMountDeadline);
  ASSERT_EQ(mount_error, "");
  std::printf("[ e2e    ] ferryd mounted %s in %lld ms\n", layout.name.c_str(), ms_since(t0));

  // The contract: allow_other and default_permissions.
  std::string mounts;
  ASSERT_TRUE(read_text_file("/proc/self/mounts", &mounts));
  const size_t at = mounts.find(" " + fuse.path() + " ");
  ASSERT_NE(at, std::string::npos);
  const std::string line = mounts.substr(at, mounts.find('\n', at) - at);
  EXPECT_NE(line.find("allow_other"), std::string::npos) << line;
  EXPECT_NE(line.find("default_permissions"), std::string::npos) << line;

  {
    Watchdog watchdog(fuse.pid(), kCompareDeadline);
    const auto t1 = Clock::now();
    const CompareResult r = compare_trees(kernel->path(), fuse.path(), CompareOptions::strict());
    std::printf("[ e2e    ] kernel vs ferryd (%s): %lld ms; %s\n", layout.name.c_str(), ms_since(t1),
                r.summary().c_str());
    EXPECT_FALSE(watchdog.fired()) << "ferryd did not answer within " << kCompareDeadline.count()
                                   << " s and was killed; its log:\n"
                                   << fuse.log();
    EXPECT_TRUE(r.ok()) << "A = kernel erofs mount, B = ferryd fuse mount\n" << r.report();
    EXPECT_EQ(r.entries, shared_->stats.entries);
    EXPECT_GE(r.bytes_compared, shared_->stats.content_bytes);

    // default_permissions: an unprivileged user gets the kernel's answers.
    const auto rels = access_probe_paths(shared_->source);
    for (const auto& [uid, gid] : {std::pair<uid_t, gid_t>{1000, 1000}, {65534, 65534}}) {
      for (const auto& d : compare_access_as(uid, gid, kernel->path(), fuse.path(), rels)) ADD_FAILURE() << d;
    }
  }

  const int status = fuse.terminate(kExitDeadline);
  ASSERT_NE(status, -1) << "ferryd did not exit within " << kExitDeadline.count() << " s of SIGTERM; log:\n"
                        << fuse.log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "ferryd's wait status after SIGTERM: " << status << "; log:\n"
      << fuse.log();
  EXPECT_FALSE(test::is_mounted(fuse.path())) << "ferryd left its mount behind";
}

INSTANTIATE_TEST_SUITE_P(Layouts, ErofsLayoutTest, ::testing::ValuesIn(erofs_layouts()),
                         [](const ::testing::TestParamInfo<Layout>& p) { return p.param.name; });

}  // namespace
}  // namespace ferry::e2e
