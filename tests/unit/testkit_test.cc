// The test kit's own promises, where the tests that use it could not notice a broken kit: readers
// catch wrong bytes and time gaps, processes are reaped with their status, temp dirs go away.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kit/memory_source.h"
#include "support/test_support.h"

namespace ferry::test {
namespace {

namespace fs = std::filesystem;

void write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(TestKit, MeasureGapsFindsTheLongestGapOverlappingTheWindow) {
  // Completions at 0, 10, 40, 45, 100 (ns); window [20, 42]: the gaps 10..40 and 40..45 overlap it.
  GapWindow w = measure_gaps({0, 10, 40, 45, 100}, 20, 42, 30);
  EXPECT_EQ(w.max_gap_ns, 30);
  EXPECT_EQ(w.gap_from, 10);
  EXPECT_EQ(w.gap_to, 40);
  EXPECT_EQ(w.first_after, 40);
  EXPECT_EQ(w.ops, 1U);
  // A read still blocked at the window's end counts in full.
  EXPECT_EQ(measure_gaps({0, 10, 40, 45, 100}, 46, 50, 46).max_gap_ns, 55);
}

TEST(TestKit, ReadersVerifyEveryByteAndSeeAWrongOne) {
  TempDir dir;
  const std::string data = random_bytes(3 * 4096 + 100, 1);
  write(dir / "good/a", data);
  write(dir / "source/a", data);
  std::string bad = data;
  bad[4096 + 7] ^= 1;
  write(dir / "bad/a", bad);
  ReadOptions options;
  options.threads = 2;
  options.max_len = 4096;
  {
    Readers same(dir / "good", dir / "source", {"a"}, options);
    ASSERT_TRUE(same.wait_progress(200, 10s));
    same.stop();
    EXPECT_EQ(same.errors(), 0U) << same.describe("same");
    EXPECT_EQ(same.mismatches(), 0U) << same.describe("same");
    EXPECT_LT(same.max_gap(), std::chrono::microseconds(10'000'000));
  }
  Readers differs(dir / "bad", dir / "source", {"a"}, options);
  ASSERT_TRUE(wait_until([&] { return differs.mismatches() > 0; }, 10s)) << differs.describe("differs");
  differs.stop();
  ASSERT_FALSE(differs.failures().empty());
  EXPECT_NE(differs.failures()[0].find("wrong bytes @4096"), std::string::npos) << differs.failures()[0];
}

TEST(TestKit, ProcessIsReapedWithItsStatusAndKilledOnDestruction) {
  auto exits = Process::spawn({"/bin/sh", "-c", "exit 3"});
  ASSERT_TRUE(exits.ok()) << exits.error().message;
  auto st = exits->wait_exit(10s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 3) << describe_status(*st);
  pid_t pid = 0;
  {
    Process sleeper = Process::start({"/bin/sleep", "60"});
    pid = sleeper.pid();
    EXPECT_TRUE(process_alive(pid));
    EXPECT_FALSE(sleeper.wait_exit(50ms).has_value());
  }
  EXPECT_TRUE(wait_gone(pid, 10s)) << "the destructor must kill and reap its child";
  EXPECT_FALSE(Process::spawn({"/nonexistent/binary"}).value().wait_exit(10s).value_or(0) == 0);
}

TEST(TestKit, TempDirRemovesItselfAndProcessesNamingIt) {
  std::string path;
  pid_t pid = 0;
  {
    auto dir = TempDir::create("ferry-kit-", /*kill_leftovers=*/true);
    ASSERT_TRUE(dir.ok());
    path = dir->path();
    write(*dir / "sub/file", "x");
    // Not our child (started in the background by a shell that exits): only its command line
    // names the dir, as a daemon that outlived its manager would.
    std::string out;
    ASSERT_EQ(
        run_shell("python3 -c 'import time; time.sleep(60)' " + path + "/sub/file >/dev/null 2>&1 & echo $!",
                  &out),
        0);
    pid = static_cast<pid_t>(std::stol(out));
    ASSERT_TRUE(wait_until([&] { return !processes_naming(path).empty(); }, 10s));
    EXPECT_EQ(processes_naming(path), std::vector<pid_t>{pid});
  }
  EXPECT_FALSE(fs::exists(path));
  // Its pidfd turns readable as it exits; /proc may show it running an instant longer.
  EXPECT_TRUE(wait_until([&] { return !process_alive(pid); }, 10s)) << "pid " << pid << " survived";
}

TEST(TestKit, MemorySourceServesItsBytesAndRefusesPastTheEnd) {
  testkit::MemorySource src(std::string_view("abcdef"), "six bytes", /*viewable=*/true);
  std::byte out[3]{};
  ASSERT_TRUE(src.read_exact(3, out).ok());
  EXPECT_EQ(static_cast<char>(out[0]), 'd');
  auto past = src.read_exact(4, out);
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.error().message.find("six bytes"), std::string::npos);
  EXPECT_EQ(src.view().size(), 6U);
  testkit::MemorySource unmapped(std::string_view("abc"), "x", /*viewable=*/false);
  EXPECT_TRUE(unmapped.view().empty());
}

}  // namespace
}  // namespace ferry::test
