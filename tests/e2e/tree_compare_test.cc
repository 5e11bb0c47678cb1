// Self-tests of the e2e tree builder and comparator: two builds from one seed are identical, and
// each kind of single mutation (a byte, an xattr, a mode, an owner, an mtime, a symlink target,
// a path, a hard link, a device number, a file type, a size) is reported, and only it. A
// comparator that cannot fail would make every kernel comparison meaningless.
#include "e2e/tree_compare.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "e2e/erofs_fixture.h"
#include "e2e/fs_util.h"
#include "e2e/tree_builder.h"
#include "support/test_support.h"

namespace ferry::e2e {
namespace {

namespace tp = tree_paths;

class ComparatorSelfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = missing_prerequisite(); !why.empty()) GTEST_FAIL() << why;
    a_ = dir_ / "a";
    b_ = dir_ / "b";
    stats_ = build_tree(a_, TreeSpec::small());
    build_tree(b_, TreeSpec::small());
  }

  [[nodiscard]] std::string b(const std::string& rel) const { return b_ + "/" + rel; }

  // Runs `mutate` on `b` while keeping the mtimes of `rel` and its parent, so that only the
  // mutated attribute differs.
  void mutate_keeping_times(const std::string& rel, const std::function<void()>& mutate) const {
    const std::string parent = rel.substr(0, rel.rfind('/'));
    struct stat st_self {};
    struct stat st_parent {};
    const bool had_self = ::lstat(b(rel).c_str(), &st_self) == 0;
    ASSERT_EQ(::lstat(b(parent).c_str(), &st_parent), 0);
    mutate();
    const timespec self_times[2] = {st_self.st_atim, st_self.st_mtim};
    const timespec parent_times[2] = {st_parent.st_atim, st_parent.st_mtim};
    if (had_self && ::lstat(b(rel).c_str(), &st_self) == 0) {
      ASSERT_EQ(::utimensat(AT_FDCWD, b(rel).c_str(), self_times, AT_SYMLINK_NOFOLLOW), 0);
    }
    ASSERT_EQ(::utimensat(AT_FDCWD, b(parent).c_str(), parent_times, AT_SYMLINK_NOFOLLOW), 0);
  }

  // Compares strictly and requires at least one difference mentioning `keyword`, and that every
  // difference names one of `paths`.
  void expect_reported(const std::string& keyword, const std::set<std::string>& paths) const {
    CompareResult r = compare_trees(a_, b_, CompareOptions::strict());
    ASSERT_FALSE(r.ok()) << "the comparator missed a mutation (" << keyword << ")";
    bool found = false;
    for (const auto& d : r.differences) {
      if (d.find(keyword) != std::string::npos) found = true;
      bool names_path = false;
      for (const auto& p : paths) names_path = names_path || d.rfind(printable(p) + ": ", 0) == 0;
      EXPECT_TRUE(names_path) << "unrelated difference reported: " << d;
    }
    EXPECT_TRUE(found) << "no difference mentions \"" << keyword << "\":\n" << r.report();
  }

  test::TempDir dir_;
  std::string a_;
  std::string b_;
  TreeStats stats_;
};

TEST_F(ComparatorSelfTest, TwoBuildsFromOneSeedAreIdentical) {
  CompareResult r = compare_trees(a_, b_, CompareOptions::strict());
  EXPECT_TRUE(r.ok()) << r.report();
  EXPECT_EQ(r.entries, stats_.entries);
  EXPECT_GE(r.bytes_compared, stats_.content_bytes);
  EXPECT_GT(r.random_reads, 100U);
  EXPECT_GT(r.direct_reads, 0U);
}

TEST_F(ComparatorSelfTest, TreeHasEveryKindOfEntry) {
  EXPECT_GT(stats_.directories, 50U);
  EXPECT_GT(stats_.regular_files, 300U);
  EXPECT_GT(stats_.symlinks, 20U);
  EXPECT_GT(stats_.specials, 10U);
  EXPECT_GE(stats_.extra_hard_links, 9U);
  struct stat st {};
  ASSERT_EQ(::lstat((a_ + "/" + tp::kLargeFile).c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), TreeSpec::small().large_file_size);
  ASSERT_EQ(::lstat((a_ + "/links/long_4095").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4095);
  ASSERT_EQ(::lstat((a_ + "/modes/m4755").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755U);
  ASSERT_EQ(::lstat((a_ + "/owners/own_4294967294_4294967294").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4294967294U);
  ASSERT_EQ(::lstat((a_ + "/times/t2").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, -1);
  EXPECT_EQ(st.st_mtim.tv_nsec, 500000000);
  ASSERT_EQ(::lstat((a_ + "/sparse/hole_start").c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, static_cast<uint64_t>(st.st_size)) << "not sparse";
  ASSERT_EQ(::lstat((a_ + "/hardlinks/tri_a").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 3U);
}

TEST_F(ComparatorSelfTest, SameTreeAgainstItself) {
  CompareResult r = compare_trees(a_, a_, CompareOptions::strict());
  EXPECT_TRUE(r.ok()) << r.report();
}

TEST_F(ComparatorSelfTest, ReportsOneFlippedByte) {
  const std::string rel = tp::kBoundaryFile;
  mutate_keeping_times(rel, [&] {
    UniqueFd fd(::open(b(rel).c_str(), O_RDWR));
    ASSERT_TRUE(fd.valid());
    char c = 0;
    ASSERT_EQ(::pread(fd.get(), &c, 1, 65536), 1);  // the last byte, just past a 64 KiB chunk
    c = static_cast<char>(c ^ 0x01);
    ASSERT_EQ(::pwrite(fd.get(), &c, 1, 65536), 1);
  });
  expect_reported("first differing byte at file offset 65536", {rel});
}

TEST_F(ComparatorSelfTest, ReportsChangedXattrValue) {
  const std::string rel = tp::kSmallXattrFile;
  ASSERT_EQ(::lsetxattr(b(rel).c_str(), "user.a", "2", 1, XATTR_REPLACE), 0);
  expect_reported("xattr user.a value", {rel});
}

TEST_F(ComparatorSelfTest, ReportsRemovedXattr) {
  const std::string rel = "xattrs/shared/f7";
  ASSERT_EQ(::lremovexattr(b(rel).c_str(), "trusted.shared_1k"), 0);
  expect_reported("xattr trusted.shared_1k only in A", {rel});
}

TEST_F(ComparatorSelfTest, ReportsXattrAddedToSymlink) {
  const std::string rel = tp::kSymlink;
  ASSERT_EQ(::lsetxattr(b(rel).c_str(), "trusted.extra", "x", 1, 0), 0);
  expect_reported("xattr trusted.extra only in B", {rel});
}

TEST_F(ComparatorSelfTest, ReportsChangedMode) {
  const std::string rel = tp::kModeFile;
  ASSERT_EQ(::chmod(b(rel).c_str(), 0645), 0);
  expect_reported("mode: A=0100644 B=0100645", {rel});
}

TEST_F(ComparatorSelfTest, ReportsChangedUidAndGid) {
  const std::string rel = "owners/own_65536_65536";
  ASSERT_EQ(::lchown(b(rel).c_str(), 65537, static_cast<gid_t>(-1)), 0);
  expect_reported("uid: A=65536 B=65537", {rel});
  ASSERT_EQ(::lchown(b(rel).c_str(), 65536, 7), 0);
  expect_reported("gid: A=65536 B=7", {rel});
}

TEST_F(ComparatorSelfTest, ReportsOneNanosecondOfMtime) {
  const std::string rel = "times/t4";
  struct stat st {};
  ASSERT_EQ(::lstat(b(rel).c_str(), &st), 0);
  timespec times[2] = {st.st_atim, st.st_mtim};
  times[1].tv_nsec -= 1;
  ASSERT_EQ(::utimensat(AT_FDCWD, b(rel).c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  expect_reported("mtime: A=2147483647.999999999 B=2147483647.999999998", {rel});
}

TEST_F(ComparatorSelfTest, ReportsChangedSymlinkTarget) {
  const std::string rel = tp::kSymlink;
  mutate_keeping_times(rel, [&] {
    struct stat st {};
    ASSERT_EQ(::lstat(b(rel).c_str(), &st), 0);
    ASSERT_EQ(::unlink(b(rel).c_str()), 0);
    ASSERT_EQ(::symlink("../sizes/size_4097", b(rel).c_str()), 0);  // same length
    ASSERT_EQ(::lchown(b(rel).c_str(), st.st_uid, st.st_gid), 0);
  });
  expect_reported("symlink target", {rel});
}

TEST_F(ComparatorSelfTest, ReportsExtraAndMissingPaths) {
  const std::string extra = std::string(tp::kBigDir) + "/zz_extra";
  mutate_keeping_times(extra, [&] { write_text_file(b(extra), ""); });
  // (On tmpfs a directory's size counts its entries, so the parent may differ in size too.)
  expect_reported("only in B (regular file)", {extra, tp::kBigDir});
  mutate_keeping_times(extra, [&] { ASSERT_EQ(::unlink(b(extra).c_str()), 0); });
  const std::string gone = "empty/nested/a";
  mutate_keeping_times(gone, [&] { ASSERT_EQ(test::run_shell("rm -rf " + shell_quote(b(gone))), 0); });
  // The parent loses the subdirectory's ".." link: its nlink differs too.
  expect_reported("only in A (directory) with 2 entries below it", {gone, "empty/nested"});
}

TEST_F(ComparatorSelfTest, ReportsBrokenHardLink) {
  const std::string rel = tp::kHardPairB;
  mutate_keeping_times(rel, [&] {
    struct stat st {};
    ASSERT_EQ(::lstat(b(rel).c_str(), &st), 0);
    const std::string copy = b(rel) + ".copy";
    ASSERT_EQ(test::run_shell("cp -a " + shell_quote(b(rel)) + " " + shell_quote(copy)), 0);
    ASSERT_EQ(::rename(copy.c_str(), b(rel).c_str()), 0);
  });
  // pair_a now has nlink 1 and pair_b is its own inode: nothing else differs.
  expect_reported("hard-link group", {tp::kHardPairA, rel});
}

TEST_F(ComparatorSelfTest, ReportsChangedDeviceNumber) {
  const std::string rel = tp::kCharDevice;
  mutate_keeping_times(rel, [&] {
    struct stat st {};
    ASSERT_EQ(::lstat(b(rel).c_str(), &st), 0);
    ASSERT_EQ(::unlink(b(rel).c_str()), 0);
    ASSERT_EQ(::mknod(b(rel).c_str(), st.st_mode, makedev(1, 4)), 0);
    ASSERT_EQ(::lchown(b(rel).c_str(), st.st_uid, st.st_gid), 0);
    ASSERT_EQ(::chmod(b(rel).c_str(), st.st_mode & 07777), 0);
  });
  expect_reported("rdev: A=1:3 B=1:4", {rel});
}

TEST_F(ComparatorSelfTest, ReportsChangedFileType) {
  const std::string rel = tp::kFifo;
  mutate_keeping_times(rel, [&] {
    ASSERT_EQ(::unlink(b(rel).c_str()), 0);
    write_text_file(b(rel), "");
  });
  expect_reported("type: A=fifo B=regular file", {rel});
}

TEST_F(ComparatorSelfTest, ReportsChangedSize) {
  const std::string rel = "sizes/size_4096";
  mutate_keeping_times(rel, [&] { ASSERT_EQ(::truncate(b(rel).c_str(), 4097), 0); });
  expect_reported("size: A=4096 B=4097", {rel});
}

TEST_F(ComparatorSelfTest, ReportsByteInsideAHole) {
  const std::string rel = "sparse/hole_middle";
  mutate_keeping_times(rel, [&] {
    UniqueFd fd(::open(b(rel).c_str(), O_WRONLY));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::pwrite(fd.get(), "x", 1, 1 << 20), 1);
  });
  expect_reported("content [1048576, +1048576): first differing byte at file offset 1048576", {rel});
}

TEST_F(ComparatorSelfTest, CapsTheReportButCountsEverything) {
  ASSERT_EQ(test::run_shell("find " + shell_quote(b_ + "/bigdir") + " -type f -exec chmod 0601 {} +"), 0);
  CompareResult r = compare_trees(a_, b_, CompareOptions::strict());
  EXPECT_EQ(r.differences.size(), 50U);
  EXPECT_GT(r.total_differences, 100U);
  EXPECT_NE(r.report().find("more differences"), std::string::npos);
}

TEST_F(ComparatorSelfTest, RelaxedOptionsIgnoreOnlyWhatTheySay) {
  // Directory sizes/mtimes are the only things erofs_vs_source() may ignore.
  const std::string rel = tp::kBigDir;
  struct stat st {};
  ASSERT_EQ(::lstat(b(rel).c_str(), &st), 0);
  timespec times[2] = {st.st_atim, st.st_mtim};
  times[1].tv_sec += 1;
  ASSERT_EQ(::utimensat(AT_FDCWD, b(rel).c_str(), times, 0), 0);
  CompareOptions relaxed = CompareOptions::erofs_vs_source();
  EXPECT_FALSE(compare_trees(a_, b_, relaxed).ok()) << "a directory mtime must still count";
  relaxed.ignore_dir_mtime = true;
  EXPECT_TRUE(compare_trees(a_, b_, relaxed).ok());
}

// The harness's own guards: a hung server is killed, a command's streams are kept apart.
TEST(HarnessSelfTest, WatchdogKillsAHungProcessAndOnlyThen) {
  test::Process sleeper = test::Process::start({"/bin/sleep", "60"});
  {
    Watchdog quiet(sleeper.pid(), std::chrono::seconds(60));
    EXPECT_FALSE(quiet.fired());
  }
  EXPECT_TRUE(sleeper.running());
  Watchdog dog(sleeper.pid(), std::chrono::milliseconds(50));
  EXPECT_NE(sleeper.wait_exit(std::chrono::seconds(10)).value_or(-1), -1);
  EXPECT_TRUE(dog.fired());
}

TEST(HarnessSelfTest, RunWithDeadlineSeparatesStreamsAndTimesOut) {
  test::TempDir dir;
  RunResult r = run_with_deadline({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, dir.path(),
                                  std::chrono::seconds(10));
  EXPECT_EQ(r.exit_code(), 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  const auto t0 = std::chrono::steady_clock::now();
  r = run_with_deadline({"/bin/sleep", "60"}, dir.path(), std::chrono::milliseconds(100));
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  r = run_with_deadline({"/bin/sleep", "60"}, dir.path(), std::chrono::seconds(60), [] { return true; });
  EXPECT_TRUE(r.stopped);
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

}  // namespace
}  // namespace ferry::e2e
