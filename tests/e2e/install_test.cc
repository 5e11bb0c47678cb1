// `cmake --install` of this build tree, as an operator would run it: the binaries, the systemd
// unit and the example configuration land where packaging/CMakeLists.txt promises, the unit
// keeps daemons alive across a manager restart (KillMode=process), the example configuration is
// exactly the manager's defaults, and the installed binaries run.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>

#include "manager/config.h"
#include "support/test_support.h"

namespace ferry {
namespace {

bool executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) == 0111;
}

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

// Installs the build tree; returns cmake's output (the test fails if cmake does).
std::string install(const std::string& prefix, const std::string& destdir = {}) {
  std::string command = destdir.empty() ? "" : "DESTDIR='" + destdir + "' ";
  command += "cmake --install '" FERRY_BINARY_DIR "' --prefix '" + prefix + "'";
  std::string out;
  EXPECT_EQ(test::run_shell(command, &out), 0) << command << "\n" << out;
  return out;
}

void expect_unit(const std::string& unit, const std::string& bindir) {
  EXPECT_TRUE(has_line(unit, "Type=simple")) << unit;
  EXPECT_TRUE(has_line(unit, "ExecStart=" + bindir + "/ferry-snapshotter --config /etc/ferry/config.toml"))
      << unit;
  EXPECT_TRUE(has_line(unit, "Restart=always")) << unit;
  EXPECT_TRUE(has_line(unit, "KillMode=process")) << unit;
  EXPECT_TRUE(has_line(unit, "RuntimeDirectory=ferry")) << unit;
  EXPECT_TRUE(has_line(unit, "RuntimeDirectoryPreserve=yes")) << unit;
  EXPECT_TRUE(has_line(unit, "StateDirectory=ferry")) << unit;
  EXPECT_TRUE(has_line(unit, "After=local-fs.target")) << unit;
  EXPECT_TRUE(has_line(unit, "Before=containerd.service")) << unit;
  EXPECT_NE(unit.find("\nLimitNOFILE="), std::string::npos) << unit;
  EXPECT_EQ(unit.find("@FERRY_"), std::string::npos) << "unsubstituted: " << unit;
  // Anything giving the service its own mount namespace would hide the daemons' mounts.
  for (const char* hiding : {"\nPrivateTmp=yes", "\nPrivateMounts=yes",
                             "\nProtectSystem=", "\nMountFlags=", "network-online.target"}) {
    EXPECT_EQ(unit.find(hiding), std::string::npos) << hiding;
  }
}

TEST(InstallTest, PrefixInstallPutsEverythingInItsPlaceAndTheBinariesRun) {
  test::TempDir dir;
  const std::string prefix = dir / "usr-local";
  install(prefix);

  for (const char* binary : {"ferryd", "ferry-snapshotter", "ferryctl", "ferry-image"}) {
    const std::string path = prefix + "/bin/" + binary;
    ASSERT_TRUE(executable(path)) << path;
    std::string out;
    EXPECT_EQ(test::run_shell("'" + path + "' --version", &out), 0) << path << ": " << out;
    EXPECT_EQ(out.rfind(std::string(binary) + " ", 0), 0U) << out;
  }
  std::string help;
  EXPECT_EQ(test::run_shell("'" + prefix + "/bin/ferryctl' --help", &help), 0) << help;
  // ferryd's registry module, where ferryd looks for it (../lib/ferry beside bin/).
  struct stat module {};
  EXPECT_EQ(::stat((prefix + "/lib/ferry/ferry-registry.so").c_str(), &module), 0);

  const std::string unit = test::read_file(prefix + "/lib/systemd/system/ferry-snapshotter.service");
  ASSERT_FALSE(unit.empty()) << "no unit installed";
  expect_unit(unit, prefix + "/bin");

  const std::string example = prefix + "/etc/ferry/config.toml.example";
  ASSERT_TRUE(executable(prefix + "/bin/ferryd"));
  EXPECT_FALSE(test::read_file(example).empty()) << example;
  const std::string containerd = test::read_file(prefix + "/etc/ferry/containerd-config.toml.example");
  EXPECT_TRUE(has_line(containerd, "  address = \"/run/ferry/ferry-grpc.sock\"")) << containerd;
  EXPECT_TRUE(has_line(containerd, "  type = \"snapshot\"")) << containerd;
  EXPECT_FALSE(test::read_file(prefix + "/share/doc/ferry/operations.md").empty());

  // systemd's own check of the unit, where systemd is installed (it also needs ExecStart's binary).
  if (test::run_shell("command -v systemd-analyze >/dev/null") == 0) {
    std::string out;
    EXPECT_EQ(
        test::run_shell("systemd-analyze verify '" + prefix + "/lib/systemd/system/ferry-snapshotter.service'",
                  &out),
        0)
        << out;
  }
}

TEST(InstallTest, DestdirStagingOfAUsrInstallUsesEtc) {
  test::TempDir dir;
  const std::string stage = dir / "stage";
  install("/usr", stage);
  EXPECT_TRUE(executable(stage + "/usr/bin/ferryd"));
  EXPECT_TRUE(executable(stage + "/usr/bin/ferry-snapshotter"));
  EXPECT_TRUE(executable(stage + "/usr/bin/ferryctl"));
  // The unit names the binaries where they will be, not where they were staged.
  const std::string unit = test::read_file(stage + "/usr/lib/systemd/system/ferry-snapshotter.service");
  ASSERT_FALSE(unit.empty());
  expect_unit(unit, "/usr/bin");
  EXPECT_FALSE(test::read_file(stage + "/etc/ferry/config.toml.example").empty());
  struct stat st {};
  EXPECT_NE(::stat((stage + "/usr/etc").c_str(), &st), 0) << "a /usr install must not create /usr/etc";
}

// The example configuration (written by hand, with comments) names every key of
// src/manager/config.h with its default: parsing it gives ManagerConfig{}.
TEST(InstallTest, ExampleConfigIsExactlyTheDefaults) {
  const std::string text = test::read_file(FERRY_SOURCE_DIR "/packaging/config.toml");
  ASSERT_FALSE(text.empty());
  auto parsed = manager::parse_config(text, "packaging/config.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const manager::ManagerConfig defaults;
  const manager::ManagerConfig& c = *parsed;
  EXPECT_EQ(c.version, defaults.version);
  EXPECT_EQ(c.root, defaults.root);
  EXPECT_EQ(c.daemon_mode, defaults.daemon_mode);
  EXPECT_EQ(c.daemon.nydusd_path, defaults.daemon.nydusd_path);
  EXPECT_EQ(c.daemon.recover_policy, defaults.daemon.recover_policy);
  EXPECT_EQ(c.daemon.failover_policy, defaults.daemon.failover_policy);
  EXPECT_EQ(c.daemon.threads_number, defaults.daemon.threads_number);
  EXPECT_EQ(c.daemon.fs_driver, defaults.daemon.fs_driver);
  EXPECT_EQ(c.daemon.recover_attempts, defaults.daemon.recover_attempts);
  EXPECT_EQ(c.daemon.hot_standby, defaults.daemon.hot_standby);
  EXPECT_EQ(c.system.enable, defaults.system.enable);
  EXPECT_EQ(c.system.address, defaults.system.address);
  EXPECT_EQ(c.log.level, defaults.log.level);
  EXPECT_EQ(c.log.dir, defaults.log.dir);
  EXPECT_EQ(c.metrics.address, defaults.metrics.address);

  // Every key (uncommented "key = " line) of the embedded defaults appears in the example too,
  // so a key added to the manager cannot be forgotten here.
  std::istringstream embedded(manager::default_config_toml());
  int keys = 0;
  for (std::string line; std::getline(embedded, line);) {
    if (line.empty() || line[0] == '#') continue;
    // "[section]" as it is; "key = value" by its "key =".
    const std::string wanted = line[0] == '[' ? line + "\n" : line.substr(0, line.find('=') + 1);
    EXPECT_NE(text.find("\n" + wanted), std::string::npos) << "missing in packaging/config.toml: " << line;
    ++keys;
  }
  EXPECT_GT(keys, 10) << "the embedded defaults look empty";
}

}  // namespace
}  // namespace ferry
