// ferryctl against a real ferry-snapshotter with real ferryd daemons: mount an image through
// `ferryctl mount`, find it in `list` and `daemons` (tables and --json), read it, see the records
// and metrics, and `umount` it. Needs root, /dev/fuse and mkfs.erofs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "daemon/daemon_harness.h"
#include "support/test_support.h"

namespace ferry {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class FerryctlManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (FUSE mounts)";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
    if (test::run_shell("command -v mkfs.erofs >/dev/null") != 0) GTEST_SKIP() << "mkfs.erofs not installed";
    image_ = test::make_sample_image(dir_.path(), "img", 12, 7);
    std::filesystem::create_directories(mnt_);
    std::ofstream(config_) << "version = 1\n"
                           << "root = \"" << dir_ / "root"
                           << "\"\n"
                           << "address = \"" << dir_ / "grpc.sock" << "\"\n"
                           << "[daemon]\n"
                           << "nydusd_path = \"" << test::binary_path("ferryd") << "\"\n"
                           << "recover_policy = \"failover\"\n"
                           << "hot_standby = false\n"
                           << "[system]\n"
                           << "address = \"" << sock_ << "\"\n";
    manager_ = test::Process::start({test::binary_path("ferry-snapshotter"), "--config", config_},
                                  dir_ / "manager.log");
    ASSERT_TRUE(test::wait_until([&] { return ctl({"daemons"}).rc == 0 || !manager_.running(); }, 20s));
    ASSERT_TRUE(manager_.running()) << test::read_file(dir_ / "manager.log");
  }

  // Daemons outlive their manager by design: end the ones this test made, by their pids.
  void TearDown() override {
    if (!manager_.running()) return;
    Outcome daemons = ctl({"daemons", "--json"});
    (void)ctl({"umount", mnt_});
    if (daemons.rc == 0) {
      for (const auto& d : json::parse(daemons.out, nullptr, false)) {
        if (d.is_object() && d.value("pid", 0) > 0) ::kill(d["pid"].get<int>(), SIGKILL);
      }
    }
    manager_.signal(SIGTERM);
    if (!manager_.wait_exit(10s)) manager_.kill_and_reap();
    test::unmount_quietly(mnt_);
  }

  struct Outcome {
    int rc = -1;
    std::string out;
  };
  Outcome ctl(const std::vector<std::string>& args) {
    std::string command = "'" + test::binary_path("ferryctl") + "' --socket '" + sock_ + "'";
    for (const auto& a : args) command += " '" + a + "'";
    Outcome o;
    o.rc = test::run_shell("(" + command + " 2>'" + (dir_ / "ctl.err") + "')", &o.out);
    return o;
  }
  std::string err() { return test::read_file(dir_ / "ctl.err"); }

  test::TempDir dir_;
  std::string mnt_ = dir_ / "mnt";
  std::string sock_ = dir_ / "system.sock";
  std::string config_ = dir_ / "config.toml";
  test::SampleImage image_;
  test::Process manager_;
};

TEST_F(FerryctlManagerTest, MountListDaemonsRecordsUmount) {
  test::MountGuard guard(mnt_);
  Outcome mounted = ctl({"mount", mnt_, image_.meta, "--blob", image_.blob});
  ASSERT_EQ(mounted.rc, 0) << err() << test::read_file(dir_ / "manager.log");
  std::string id = mounted.out;
  while (!id.empty() && id.back() == '\n') id.pop_back();
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(id.find_first_of(" \n"), std::string::npos) << "just the id: " << mounted.out;
  ASSERT_TRUE(test::is_mounted(mnt_, "fuse"));
  const std::string& file = image_.files.front();
  EXPECT_EQ(test::read_file(mnt_ + "/" + file), test::read_file(image_.tree + "/" + file));

  Outcome list = ctl({"list"});
  ASSERT_EQ(list.rc, 0) << err();
  EXPECT_NE(list.out.find("MOUNTPOINT"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(mnt_ + "  "), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(image_.meta), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(id), std::string::npos) << list.out;
  Outcome list_json = ctl({"list", "--json"});
  ASSERT_EQ(list_json.rc, 0) << err();
  json mounts = json::parse(list_json.out);
  ASSERT_EQ(mounts.size(), 1U) << list_json.out;
  EXPECT_EQ(mounts[0]["mountpoint"], mnt_);
  EXPECT_EQ(mounts[0]["daemon_id"], id);

  Outcome daemons = ctl({"daemons"});
  ASSERT_EQ(daemons.rc, 0) << err();
  EXPECT_EQ(daemons.out.rfind("ID", 0), 0U) << daemons.out;
  EXPECT_NE(daemons.out.find(id), std::string::npos) << daemons.out;
  EXPECT_NE(daemons.out.find("RUNNING"), std::string::npos) << daemons.out;
  EXPECT_NE(daemons.out.find("failover"), std::string::npos) << daemons.out;
  EXPECT_NE(daemons.out.find(mnt_), std::string::npos) << daemons.out;
  Outcome daemons_json = ctl({"daemons", "--json"});
  ASSERT_EQ(daemons_json.rc, 0) << err();
  json d = json::parse(daemons_json.out);
  ASSERT_EQ(d.size(), 1U) << daemons_json.out;
  EXPECT_EQ(d[0]["id"], id);
  EXPECT_EQ(d[0]["state"], "RUNNING");
  EXPECT_GT(d[0]["pid"].get<int>(), 0);
  EXPECT_NE(daemons.out.find(std::to_string(d[0]["pid"].get<int>())), std::string::npos);

  Outcome records = ctl({"records", "--daemon", id});
  ASSERT_EQ(records.rc, 0) << err();
  EXPECT_NE(records.out.find("start"), std::string::npos) << records.out;
  Outcome metrics = ctl({"metrics"});
  ASSERT_EQ(metrics.rc, 0) << err();
  EXPECT_NE(metrics.out.find("ferry_daemons{state=\"RUNNING\"} 1"), std::string::npos) << metrics.out;

  // A second mount at the same place is refused with the manager's reason.
  Outcome again = ctl({"mount", mnt_, image_.meta, "--blob", image_.blob});
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(err().find("HTTP 409"), std::string::npos) << err();

  Outcome umounted = ctl({"umount", mnt_});
  ASSERT_EQ(umounted.rc, 0) << err();
  EXPECT_FALSE(test::is_mounted(mnt_));
  Outcome empty = ctl({"list", "--json"});
  ASSERT_EQ(empty.rc, 0);
  EXPECT_EQ(json::parse(empty.out), json::array());
  Outcome gone = ctl({"umount", mnt_});
  EXPECT_EQ(gone.rc, 1);
  EXPECT_NE(err().find("HTTP 404"), std::string::npos) << err();
}

}  // namespace
}  // namespace ferry
