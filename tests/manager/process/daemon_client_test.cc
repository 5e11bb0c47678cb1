// DaemonClient against a real ferryd (spawned with DaemonProcess, as the manager does): info,
// wait_state, attach/detach, errors carrying ferryd's own message, and nobody listening.
#include "manager/daemon_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <filesystem>

#include "daemon/daemon_harness.h"
#include "manager/death_watcher.h"
#include "manager/process/process_test_util.h"

namespace ferry::test {
namespace {

using manager::DaemonClient;
using Clock = std::chrono::steady_clock;

class DaemonClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = make_sample_image(dir_.path(), "img", 12, 7);
    std::filesystem::create_directories(mnt_);
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "--- ferryd log ---\n" << read_file(dir_ / "ferryd.log") << "\n";
  }

  Spawned start_ferryd(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {binary_path("ferryd"), "fuse", "--mountpoint", mnt_, "--apisock", sock_};
    argv.insert(argv.end(), args.begin(), args.end());
    return spawn_or_fail(argv, dir_ / "ferryd.log");
  }
  Spawned start_dedicated(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--bootstrap", image_.meta, "--config",     image_.config_path,
                                     "--id",        "d1",        "--supervisor", dir_ / "sup.sock"};
    args.insert(args.end(), extra.begin(), extra.end());
    return start_ferryd(args);
  }

  TempDir dir_;
  std::string mnt_ = dir_ / "mnt";
  MountGuard guard_{dir_ / "mnt"};
  std::string sock_ = dir_ / "api.sock";
  SampleImage image_;
};

TEST_F(DaemonClientTest, InfoAndWaitStateOfARunningDaemon) {
  Spawned d = start_dedicated();
  ASSERT_TRUE(d->valid());
  DaemonClient client(sock_, "d1");
  EXPECT_EQ(client.socket(), sock_);
  auto info = client.wait_state("RUNNING", 10s);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->id, "d1");
  EXPECT_EQ(info->state, "RUNNING");
  EXPECT_EQ(info->pid, d->pid());
  EXPECT_FALSE(info->version.empty());
  EXPECT_FALSE(info->git_commit.empty());
  auto again = client.info();
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->state, "RUNNING");
  EXPECT_TRUE(is_mounted(mnt_, "fuse"));
}

TEST_F(DaemonClientTest, IllegalEventErrorCarriesTheDaemonsMessage) {
  Spawned d = start_dedicated();
  DaemonClient client(sock_, "d1");
  ASSERT_TRUE(client.wait_state("RUNNING", 10s).ok());
  Status st = client.takeover();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EINVAL);
  const std::string& m = st.error().message;
  EXPECT_EQ(m.rfind("ferryd d1: takeover: 400 ", 0), 0U) << m;
  EXPECT_NE(m.find("Takeover"), std::string::npos) << m;
  EXPECT_NE(m.find("RUNNING"), std::string::npos) << m;
  Status start = client.start();
  ASSERT_FALSE(start.ok());
  EXPECT_EQ(start.error().code, EINVAL);
  EXPECT_EQ(start.error().message.rfind("ferryd d1: start: 400 ", 0), 0U) << start.error().message;
}

TEST_F(DaemonClientTest, UpgradeModeDaemonWaitsInInitSendfdIsBusyAndWaitStateTimesOut) {
  Spawned d = start_dedicated({"--upgrade"});
  DaemonClient client(sock_, "d1");
  ASSERT_TRUE(client.wait_state("INIT", 10s).ok());
  Status st = client.sendfd();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EBUSY) << st.error().message;
  EXPECT_NE(st.error().message.find("ferryd d1: sendfd: 503"), std::string::npos) << st.error().message;
  auto t0 = Clock::now();
  auto r = client.wait_state("RUNNING", 300ms);
  auto waited = Clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ETIMEDOUT);
  EXPECT_NE(r.error().message.find("last state INIT"), std::string::npos) << r.error().message;
  EXPECT_GE(waited, 300ms);
  EXPECT_LT(waited, 2s);
}

TEST_F(DaemonClientTest, ExitEndsTheDaemonAndTheWatcherNoticesAtOnce) {
  Spawned d = start_dedicated();
  DaemonClient client(sock_, "d1");
  ASSERT_TRUE(client.wait_state("RUNNING", 10s).ok());
  std::atomic<int> died{0};
  auto w = manager::DeathWatcher::create([&](const std::string& key, int pid) {
    if (key == "d1" && pid == d->pid()) ++died;
  });
  ASSERT_TRUE(w.ok()) << w.error().message;
  ASSERT_TRUE((*w)->watch("d1", d->pidfd(), d->pid()).ok());
  Status st = client.exit();
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_TRUE(wait_until([&] { return died.load() == 1; }, 10s));
  auto how = d->wait_exit(5s);
  ASSERT_TRUE(how.ok()) << how.error().message;
  EXPECT_EQ(*how, "exited with status 0");
  EXPECT_TRUE(is_mounted(mnt_, "fuse")) << "exit leaves the mount for a successor";
  auto gone = client.info(500ms);
  ASSERT_FALSE(gone.ok());
  EXPECT_TRUE(gone.error().code == ECONNREFUSED || gone.error().code == ENOENT) << gone.error().message;
}

TEST_F(DaemonClientTest, AttachAndDetachOnASharedDaemon) {
  Spawned d = start_ferryd({});
  DaemonClient client(sock_, "shared");
  ASSERT_TRUE(client.wait_state("RUNNING", 10s).ok());
  Status st = client.attach("/app", image_.meta, image_.config);
  ASSERT_TRUE(st.ok()) << st.error().message;
  const std::string& f = image_.files[2];
  EXPECT_EQ(read_file(mnt_ + "/app/" + f), read_file(image_.tree + "/" + f));

  Status dup = client.attach("/app", image_.meta, image_.config);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, EEXIST);
  EXPECT_NE(dup.error().message.find("ferryd shared: attach /app: 409"), std::string::npos)
      << dup.error().message;
  EXPECT_NE(dup.error().message.find("already mounted"), std::string::npos) << dup.error().message;

  Status missing = client.attach("/other", dir_ / "no-such.erofs", image_.config);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT) << missing.error().message;

  ASSERT_TRUE(client.detach("/app").ok());
  EXPECT_TRUE(wait_until([&] { return !std::filesystem::exists(mnt_ + "/app/" + f); }, 5s));
  Status again = client.detach("/app");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ENOENT) << again.error().message;
  EXPECT_NE(again.error().message.find("ferryd shared: detach /app: 404"), std::string::npos)
      << again.error().message;
}

TEST_F(DaemonClientTest, NobodyListening) {
  DaemonClient nofile(dir_ / "missing.sock", "d9");
  auto r = nofile.info(500ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ENOENT) << r.error().message;
  EXPECT_EQ(r.error().message.rfind("ferryd d9: info: ", 0), 0U) << r.error().message;
  Status st = nofile.start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ENOENT);

  // A socket file nobody accepts on: what a crashed daemon leaves behind.
  std::string path = dir_ / "dead.sock";
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(s);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  DaemonClient dead(path);
  auto d = dead.info(500ms);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ECONNREFUSED) << d.error().message;
  EXPECT_NE(d.error().message.find(path), std::string::npos) << "an unlabelled client names its socket";
}

TEST_F(DaemonClientTest, WaitStateDeadlineWhenNobodyListens) {
  DaemonClient client(dir_ / "missing.sock", "d9");
  auto t0 = Clock::now();
  auto r = client.wait_state("RUNNING", 250ms);
  auto waited = Clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ETIMEDOUT);
  EXPECT_NE(r.error().message.find("RUNNING"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("last error"), std::string::npos) << r.error().message;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 1500ms);
}

TEST_F(DaemonClientTest, WaitStateSeesADaemonThatComesUpLater) {
  DaemonClient client(sock_, "d1");
  Result<manager::DaemonInfo> result = Error{EIO, "not run"};
  std::thread waiter([&] { result = client.wait_state("RUNNING", 15s); });
  Spawned d = start_dedicated();
  waiter.join();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->pid, d->pid());
}

}  // namespace
}  // namespace ferry::test
