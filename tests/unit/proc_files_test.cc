// common/proc_files: /proc reads that survive a process exiting under them, and the mount table
// with the octal escapes of mountinfo undone.
#include "common/proc_files.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "support/test_support.h"

namespace ferry {
namespace {

TEST(ReadWholeFile, ReadsEveryByteOfAFileLargerThanOneRead) {
  test::TempDir dir;
  std::string data(100'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  std::ofstream(dir / "f", std::ios::binary) << data;
  auto got = read_whole_file(dir / "f");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(*got, data);
}

TEST(ReadWholeFile, AMissingFileIsAnErrorNamingIt) {
  test::TempDir dir;
  auto got = read_whole_file(dir / "missing");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ENOENT);
  EXPECT_NE(got.error().message.find(dir / "missing"), std::string::npos) << got.error().message;
}

TEST(ReadProcStat, ReadsThisProcess) {
  auto st = read_proc_stat(::getpid());
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->state, 'R');
  EXPECT_EQ(st->ppid, ::getppid());
  EXPECT_GT(st->start_time, 0U);
  EXPECT_EQ(live_process_start_time(::getpid()), st->start_time);
}

TEST(ReadProcStat, AZombieIsNotLiveAndAReapedProcessDoesNotExist) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(0);
  // Not reaped yet: a zombie once it has exited.
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto st = read_proc_stat(pid);
        return st.ok() && st->state == 'Z';
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(live_process_start_time(pid), 0U);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  auto gone = read_proc_stat(pid);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ESRCH);
  EXPECT_EQ(live_process_start_time(pid), 0U);
  EXPECT_EQ(live_process_start_time(0), 0U);
}

// Needs CAP_SYS_ADMIN (tests run as root).
TEST(MountTable, UnescapesPathsAndCountsStackedMounts) {
  test::TempDir dir;
  const std::string odd = dir / "a dir\twith\\odd\nname";
  const std::string sibling = dir / "a dir\twith\\odd\nname-not-below";
  std::filesystem::create_directories(odd);
  std::filesystem::create_directories(sibling);
  ASSERT_EQ(::mount("ferry-test", odd.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  ASSERT_EQ(::mount("ferry-test", sibling.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  auto table = read_mount_table();
  auto it =
      std::find_if(table.begin(), table.end(), [&](const MountEntry& m) { return m.mountpoint == odd; });
  ASSERT_NE(it, table.end()) << "the escaped mountpoint was not unescaped";
  EXPECT_EQ(it->fstype, "tmpfs");
  EXPECT_EQ(mount_count(odd), 1);
  EXPECT_EQ(mount_count(odd, "tmpfs"), 1);
  EXPECT_EQ(mount_count(odd, "fuse"), 0);
  ASSERT_EQ(::mount("ferry-test", odd.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  EXPECT_EQ(mount_count(odd), 2);
  auto below = mounts_at_or_below(odd);
  EXPECT_EQ(below, (std::vector<std::string>{odd, odd})) << "the sibling with the same prefix is not below";
  EXPECT_EQ(mounts_at_or_below(dir.path()).size(), 3U);
  // TempDir's destructor unmounts all three.
}

}  // namespace
}  // namespace ferry
