// A shared daemon tells the kernel when an image under its root goes or changes
// (FUSE_NOTIFY_INVAL_ENTRY / _INVAL_INODE): right after DELETE or PUT answers 204, a lookup
// sees the new truth, although the kernel had the old names cached, while files of the old
// image held open keep reading it and readers of the other images see nothing. The same holds
// for a successor that took the daemon over (crash, takeover, start), and for a change made
// between its takeover and its start.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "daemon/daemon_harness.h"
#include "ipc/supervisor.h"

namespace ferry::test {
namespace {

using nlohmann::json;

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) names.insert(e.path().filename());
  return names;
}

// stat(2)'s errno, 0 on success.
int stat_errno(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? 0 : errno;
}

// Every byte of `fd` from offset 0.
std::string read_all(int fd) {
  std::string out;
  char buf[1 << 16];
  off_t off = 0;
  while (true) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

// The top-level names of an image's tree.
std::set<std::string> top_names(const SampleImage& img) {
  return names_in(img.tree);
}

class InvalidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    readers_image_ = make_sample_image(dir_.path(), "a", 14, 31);
    detached_ = make_sample_image(dir_.path(), "b", 10, 32);
    old_ = make_sample_image(dir_.path(), "x-old", 12, 33);  // top level d0..d6
    new_ = make_sample_image(dir_.path(), "x-new", 3, 34);   // top level d0..d2, other bytes
    mnt_ = dir_ / "mnt";
    std::filesystem::create_directories(mnt_);
    auto sup = ipc::Supervisor::listen(dir_ / "sup.sock");
    ASSERT_TRUE(sup.ok()) << sup.error().message;
    supervisor_ = std::move(*sup);
  }
  void TearDown() override {
    if (HasFailure()) {
      for (int i = 0; i <= generation_; ++i) std::cerr << "--- ferryd log " << i << " ---\n" << read_file(log(i));
    }
  }
  std::string log(int gen) const { return dir_ / ("ferryd-" + std::to_string(gen) + ".log"); }
  std::string sock(int gen) const { return dir_ / ("api-" + std::to_string(gen) + ".sock"); }

  Ferryd start(int gen, bool upgrade) {
    generation_ = std::max(generation_, gen);
    std::vector<std::string> args = {"--mountpoint", mnt_,     "--apisock",    sock(gen),
                                     "--id",         "shared", "--supervisor", dir_ / "sup.sock"};
    if (upgrade) args.emplace_back("--upgrade");
    return Ferryd::start(args, log(gen));
  }
  http::HttpResponse mount(int gen, const std::string& method, const std::string& sub, const SampleImage& img) {
    json body = {{"source", img.meta}, {"fs_type", "rafs"}, {"config", img.config}};
    return api(sock(gen), method, "/api/v1/mount?mountpoint=" + sub, body.dump());
  }
  void attach_all(int gen) {
    ASSERT_EQ(mount(gen, "POST", "/a", readers_image_).status, 204);
    ASSERT_EQ(mount(gen, "POST", "/b", detached_).status, 204);
    ASSERT_EQ(mount(gen, "POST", "/x", old_).status, 204);
  }
  // Puts every name the checks use into the kernel's caches (dentries, attributes, pages).
  void warm_caches() {
    ASSERT_EQ(names_in(mnt_), (std::set<std::string>{"a", "b", "x"}));
    ASSERT_EQ(names_in(mnt_ + "/b"), top_names(detached_));
    ASSERT_EQ(names_in(mnt_ + "/x"), top_names(old_));
    ASSERT_EQ(stat_errno(mnt_ + "/b/" + detached_.files[4]), 0);
    ASSERT_EQ(stat_errno(mnt_ + "/x/" + old_.files[5]), 0);  // d5/f5: only in the old image
    ASSERT_TRUE(read_file(mnt_ + "/x/" + old_.files[0]) == read_file(old_.tree + "/" + old_.files[0]));
  }
  // Opens a file of each image that goes, to be read after it went.
  void hold_files() {
    held_b_ = ::open((mnt_ + "/b/" + detached_.files[6]).c_str(), O_RDONLY);
    held_x_ = ::open((mnt_ + "/x/" + old_.files[6]).c_str(), O_RDONLY);
    ASSERT_GE(held_b_, 0);
    ASSERT_GE(held_x_, 0);
  }
  void detach_b(int gen) { ASSERT_EQ(api(sock(gen), "DELETE", "/api/v1/mount?mountpoint=/b").status, 204); }
  void replace_x(int gen) { ASSERT_EQ(mount(gen, "PUT", "/x", new_).status, 204); }

  // What a lookup must see right after the changes, with no wait.
  void expect_new_truth() {
    EXPECT_EQ(stat_errno(mnt_ + "/b"), ENOENT) << "a detached image must not resolve";
    EXPECT_EQ(stat_errno(mnt_ + "/b/" + detached_.files[4]), ENOENT);
    EXPECT_EQ(names_in(mnt_), (std::set<std::string>{"a", "x"}));
    EXPECT_EQ(names_in(mnt_ + "/x"), top_names(new_)) << "the replaced image must be listed";
    EXPECT_EQ(stat_errno(mnt_ + "/x/" + old_.files[5]), ENOENT) << "a name of the old image only";
    EXPECT_TRUE(read_file(mnt_ + "/x/" + new_.files[0]) == read_file(new_.tree + "/" + new_.files[0]))
        << "a path in both images must read the new image's bytes";
  }
  // Files opened before the changes read the old images' bytes, whole.
  void expect_held_files_read_old() {
    EXPECT_TRUE(read_all(held_b_) == read_file(detached_.tree + "/" + detached_.files[6]));
    EXPECT_TRUE(read_all(held_x_) == read_file(old_.tree + "/" + old_.files[6]));
    ::close(held_b_);
    ::close(held_x_);
    held_b_ = held_x_ = -1;
  }
  void expect_readers_clean(Readers& readers) {
    ASSERT_TRUE(readers.wait_progress(30));
    readers.stop();
    EXPECT_EQ(readers.errors(), 0U) << ::testing::PrintToString(readers.failures());
    EXPECT_EQ(readers.mismatches(), 0U) << ::testing::PrintToString(readers.failures());
  }
  void save(int gen) {
    auto r = supervisor_->receive(
        [&]() -> Status {
          auto resp = api(sock(gen), "PUT", "/api/v1/daemon/fuse/sendfd");
          if (resp.status != 204) return Error{EIO, "sendfd -> " + std::to_string(resp.status) + " " + resp.body};
          return {};
        },
        10s);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  void take_over(int gen) {
    ASSERT_TRUE(wait_state(sock(gen), "INIT"));
    auto r = supervisor_->send(
        [&]() -> Status {
          auto resp = api(sock(gen), "PUT", "/api/v1/daemon/fuse/takeover");
          if (resp.status != 204) return Error{EIO, "takeover -> " + std::to_string(resp.status) + " " + resp.body};
          return {};
        },
        10s);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(daemon_state(sock(gen)), "READY");
  }
  // Generation 0 serves the three images, every name the checks use cached, files held open.
  void serve_with_everything_cached(Ferryd& d) {
    d = start(0, false);
    ASSERT_TRUE(wait_state(sock(0), "RUNNING"));
    ASSERT_NO_FATAL_FAILURE(attach_all(0));
    ASSERT_NO_FATAL_FAILURE(warm_caches());
    ASSERT_NO_FATAL_FAILURE(hold_files());
  }
  // Saves generation 0's state, kills it (-9) and has generation 1 take over (READY).
  void crash_and_take_over(Ferryd& d, Ferryd& successor) {
    ASSERT_NO_FATAL_FAILURE(save(0));
    d.process().kill_and_reap();
    successor = start(1, true);
    ASSERT_NO_FATAL_FAILURE(take_over(1));
  }
  void start_serving(int gen) {
    ASSERT_EQ(api(sock(gen), "PUT", "/api/v1/daemon/start").status, 204);
    ASSERT_EQ(daemon_state(sock(gen)), "RUNNING");
  }

  TempDir dir_;
  MountGuard guard_{dir_ / "mnt"};
  SampleImage readers_image_, detached_, old_, new_;
  std::string mnt_;
  std::unique_ptr<ipc::Supervisor> supervisor_;
  int generation_ = 0;
  int held_b_ = -1;
  int held_x_ = -1;
};

TEST_F(InvalidationTest, DetachAndReplaceAreSeenByTheVeryNextLookup) {
  Ferryd d;
  ASSERT_NO_FATAL_FAILURE(serve_with_everything_cached(d));
  Readers readers(mnt_ + "/a", readers_image_.tree, readers_image_.files, {.threads = 2});
  ASSERT_TRUE(readers.wait_progress(20));
  ASSERT_NO_FATAL_FAILURE(detach_b(0));
  ASSERT_NO_FATAL_FAILURE(replace_x(0));
  expect_new_truth();
  expect_held_files_read_old();
  expect_readers_clean(readers);
}

TEST_F(InvalidationTest, ASuccessorThatTookOverTellsTheKernelToo) {
  Ferryd d;
  ASSERT_NO_FATAL_FAILURE(serve_with_everything_cached(d));
  Readers readers(mnt_ + "/a", readers_image_.tree, readers_image_.files, {.threads = 2});
  ASSERT_TRUE(readers.wait_progress(20));
  Ferryd successor;
  ASSERT_NO_FATAL_FAILURE(crash_and_take_over(d, successor));
  ASSERT_NO_FATAL_FAILURE(start_serving(1));
  ASSERT_TRUE(readers.wait_progress(20)) << "the successor does not serve";
  ASSERT_NO_FATAL_FAILURE(detach_b(1));
  ASSERT_NO_FATAL_FAILURE(replace_x(1));
  expect_new_truth();
  expect_held_files_read_old();
  expect_readers_clean(readers);
}

// Changed after the takeover, before start: nobody answers the kernel then, so the daemon
// tells it when it starts, and a lookup right after start sees the change.
TEST_F(InvalidationTest, ChangesBetweenTakeoverAndStartAreToldAtStart) {
  Ferryd d;
  ASSERT_NO_FATAL_FAILURE(serve_with_everything_cached(d));
  Ferryd successor;
  ASSERT_NO_FATAL_FAILURE(crash_and_take_over(d, successor));
  ASSERT_NO_FATAL_FAILURE(detach_b(1));
  ASSERT_NO_FATAL_FAILURE(replace_x(1));
  ASSERT_NO_FATAL_FAILURE(start_serving(1));
  expect_new_truth();
  expect_held_files_read_old();
}

}  // namespace
}  // namespace ferry::test
