// ferry-snapshotter as containerd's snapshotter for ordinary OCI images, with the real parts:
// Debian's containerd 1.6 (a private instance, ContainerdServer, with [proxy_plugins.ferry]),
// runc, Debian's docker-registry on 127.0.0.1 and skopeo. The image is made here: a busybox-static
// shell and data files in three layers (a whiteout and an overwrite in the top one).
//   - `ctr images pull --snapshotter ferry` unpacks it into Ferry's snapshots; a container run on
//     them lists its files (modes, owners, sizes, link targets, sha256) exactly as the same image
//     does on containerd's overlayfs snapshotter, and as the test wrote them;
//   - ferry-snapshotter killed (SIGKILL) and started again: containerd still lists the snapshots
//     through it and a new container runs;
//   - `ctr images rm` and containerd's garbage collection remove every snapshot and directory;
//   - `ctr-remote images rpull` (the layer labels Ferry images will use) unpacks and runs it too.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/proc_files.h"
#include "e2e/containerd_fixture.h"
#include "e2e/erofs_fixture.h"
#include "e2e/tar_writer.h"
#include "oci/registry_fixture.h"

namespace ferry::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kToolDeadline = 180s;
constexpr const char* kBusybox = "/bin/busybox";

// What each container prints: the root's mode and owner, then every path under /data and
// /etc/ferry with its kind, mode, owner, size, link target and content hash.
constexpr const char* kListing =
    "cd / && echo \"/ $(stat -c '%a %u:%g' /)\" && find data etc/ferry | sort | while read f; do "
    "if [ -L \"$f\" ]; then echo \"$f link $(readlink \"$f\")\"; "
    "elif [ -f \"$f\" ]; then echo \"$f file $(stat -c '%a %u:%g %s' \"$f\") $(sha256sum < \"$f\" | cut -d' "
    "' -f1)\"; "
    "else echo \"$f $(stat -c '%F %a %u:%g' \"$f\")\"; fi; done";

// ferry-snapshotter with a private root and sockets, killed by pid when it goes.
class FerrySnapshotter {
 public:
  explicit FerrySnapshotter(const test::TempDir& dir) : dir_(dir) {
    std::ofstream(dir_ / "ferry.toml")
        << "version = 1\n"
        << "root = \"" << dir_ / "root"
        << "\"\n"
        << "address = \"" << socket() << "\"\n"
        << "[daemon]\nnydusd_path = \"" << test::binary_path("ferryd") << "\"\n"
        << "[system]\naddress = \"" << dir_ / "system.sock"
        << "\"\n"
        << "[log]\ndir = \"" << dir_ / "logs"
        << "\"\n";
  }
  bool start() {
    process_ = test::Process::start({test::binary_path("ferry-snapshotter"), "--config", dir_ / "ferry.toml"},
                                    dir_ / "ferry-snapshotter.out");
    return test::wait_until([&] { return !process_.running() || fs::exists(socket()); }, 30s) &&
           process_.running();
  }
  void kill() { process_.kill_and_reap(); }
  [[nodiscard]] std::string socket() const { return dir_ / "ferry-grpc.sock"; }
  [[nodiscard]] std::string snapshots_dir() const { return dir_ / "root/snapshots"; }
  [[nodiscard]] std::string log() const { return file_tail(dir_ / "logs/ferry-snapshotter.log"); }

 private:
  const test::TempDir& dir_;
  test::Process process_;
};

class ContainerdSnapshotterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = ContainerdServer::missing_prerequisite();
    if (missing.empty() && test::run_shell("command -v runc >/dev/null") != 0)
      missing = "runc is not installed";
    if (missing.empty() &&
        test::run_shell("command -v skopeo >/dev/null && command -v docker-registry >/dev/null") != 0)
      missing = "skopeo or docker-registry is not installed";
    if (missing.empty() && !fs::exists(kBusybox)) missing = "busybox-static (/bin/busybox) is not installed";
    if (!missing.empty()) GTEST_SKIP() << missing;
  }

  // The image's layers, lowest first, and what a listing of them must say.
  void make_layers() {
    std::ifstream in(kBusybox, std::ios::binary);
    std::string busybox((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<TarEntry> base = {dir("bin"), file("bin/busybox", busybox, 0755)};
    for (const char* applet : {"sh", "find", "sort", "stat", "readlink", "sha256sum", "cut", "cat", "echo"})
      base.push_back(symlink(std::string("bin/") + applet, "busybox"));
    a_bin_ = random_bytes(300 * 1024, 1);
    std::vector<TarEntry> data = {dir("data"),
                                  file("data/a.bin", a_bin_),
                                  file("data/run.sh", "#!/bin/sh\necho hi\n", 0755),
                                  dir("data/sub", 0750),
                                  file("data/sub/deep.txt", "deep\n", 0600),
                                  symlink("data/link", "a.bin"),
                                  file("data/gone.txt", "soon removed\n"),
                                  file("data/override.txt", "v1\n"),
                                  dir("etc"),
                                  dir("etc/ferry"),
                                  file("etc/ferry/hello", "hello\n")};
    data[4].uid = 1000;
    data[4].gid = 100;
    new_bin_ = random_bytes(1 << 20, 2);
    std::vector<TarEntry> top = {dir("data"), whiteout("data/gone.txt"), file("data/override.txt", "v2\n"),
                                 file("data/new.bin", new_bin_)};
    for (const auto& layer : {base, data, top}) {
      tars_.push_back(make_tar(layer));
      gz_.push_back(make_tar(layer, TarCompression::kGzip));
    }
  }

  RunResult tool(const std::vector<std::string>& argv) {
    return run_with_deadline(argv, dir_.path(), kToolDeadline);
  }

  ImageDir dir_;
  test::TempDir ferry_dir_;
  std::vector<std::string> tars_, gz_;
  std::string a_bin_, new_bin_;
};

TEST_F(ContainerdSnapshotterTest, OrdinaryImageRunsOnFerryAsOnOverlayfsAndSurvivesARestart) {
  oci::test::RegistryServer registry;
  ASSERT_TRUE(registry.ok());
  FerrySnapshotter ferry(ferry_dir_);
  ASSERT_TRUE(ferry.start()) << ferry.log();
  ContainerdConfig config;
  config.proxy_snapshotters = {{"ferry", ferry.socket()}};
  ContainerdServer containerd(config);
  ASSERT_TRUE(containerd.ok());

  // containerd loaded the proxy plugin (docs/containerd.md says what this line looks like).
  auto plugins = containerd.ctr({"plugins", "ls"});
  ASSERT_EQ(plugins.exit_code(), 0) << plugins.describe();
  bool listed = false;
  for (const auto& l : test::lines_of(plugins.out)) {
    listed = listed || (l.find("io.containerd.snapshotter.v1") != std::string::npos &&
                        l.find(" ferry ") != std::string::npos && l.find(" ok") != std::string::npos);
  }
  EXPECT_TRUE(listed) << plugins.out;

  make_layers();
  write_oci_layout(dir_.path() + "/oci", "v1", gz_, tars_);
  const std::string image = registry.host() + "/plain/busybox-data:v1";
  auto pushed = tool({"/usr/bin/skopeo", "copy", "--dest-tls-verify=false", "oci:" + dir_.path() + "/oci:v1",
                      "docker://" + image});
  ASSERT_EQ(pushed.exit_code(), 0) << pushed.describe();

  auto pull = containerd.ctr({"images", "pull", "--plain-http", "--snapshotter", "ferry", image});
  ASSERT_EQ(pull.exit_code(), 0) << pull.describe() << containerd.log_tail() << ferry.log();
  auto on_ferry =
      containerd.ctr({"run", "--rm", "--snapshotter", "ferry", image, "on-ferry", "/bin/sh", "-c", kListing});
  ASSERT_EQ(on_ferry.exit_code(), 0) << on_ferry.describe() << containerd.log_tail() << ferry.log();

  // What the test wrote, seen from inside the container: the whiteout and the overwrite applied.
  const auto listing = test::lines_of(on_ferry.out);
  auto has = [&](const std::string& line) {
    return std::find(listing.begin(), listing.end(), line) != listing.end();
  };
  EXPECT_TRUE(has("data/a.bin file 644 0:0 " + std::to_string(a_bin_.size()) + " " + sha256_hex(a_bin_)))
      << on_ferry.out;
  EXPECT_TRUE(
      has("data/new.bin file 644 0:0 " + std::to_string(new_bin_.size()) + " " + sha256_hex(new_bin_)))
      << on_ferry.out;
  EXPECT_TRUE(has("data/override.txt file 644 0:0 3 " + sha256_hex("v2\n"))) << on_ferry.out;
  EXPECT_TRUE(has("data/sub/deep.txt file 600 1000:100 5 " + sha256_hex("deep\n"))) << on_ferry.out;
  EXPECT_TRUE(has("data/link link a.bin")) << on_ferry.out;
  EXPECT_TRUE(has("data/sub directory 750 0:0")) << on_ferry.out;
  EXPECT_FALSE(on_ferry.out.find("gone.txt") != std::string::npos) << on_ferry.out;
  EXPECT_EQ(listing.size(), 11U) << on_ferry.out;

  // The same image on containerd's own overlayfs snapshotter says the same.
  auto pull_overlay = containerd.ctr({"images", "pull", "--plain-http", image});
  ASSERT_EQ(pull_overlay.exit_code(), 0) << pull_overlay.describe();
  auto on_overlay = containerd.ctr({"run", "--rm", image, "on-overlay", "/bin/sh", "-c", kListing});
  ASSERT_EQ(on_overlay.exit_code(), 0) << on_overlay.describe();
  EXPECT_EQ(on_ferry.out, on_overlay.out);

  // The layers are Ferry's committed snapshots, the top one named by the image's chain id.
  auto ls = containerd.ctr({"snapshots", "--snapshotter", "ferry", "ls"});
  ASSERT_EQ(ls.exit_code(), 0) << ls.describe();
  const std::string top = chain_id(tars_);
  EXPECT_NE(ls.out.find(top), std::string::npos) << ls.out;
  EXPECT_EQ(test::lines_of(ls.out).size(), 1U + tars_.size()) << ls.out;  // a header and one line per layer
  // ...each with its directory under Ferry's root (the containers' active snapshots are gone).
  EXPECT_EQ(static_cast<size_t>(std::distance(fs::directory_iterator(ferry.snapshots_dir()), {})),
            tars_.size());
  std::printf("[ e2e    ] container on ferry listed %zu paths, equal to overlayfs: %s\n%s", listing.size(),
              on_ferry.out == on_overlay.out ? "yes" : "no", ls.out.c_str());

  // ferry-snapshotter dies and comes back: containerd redials, nothing is lost.
  ferry.kill();
  ASSERT_TRUE(ferry.start()) << ferry.log();
  RunResult again;
  ASSERT_TRUE(test::wait_until(
      [&] {
        again = containerd.ctr({"snapshots", "--snapshotter", "ferry", "ls"}, 20s);
        return again.exit_code() == 0;
      },
      60s))
      << again.describe();
  EXPECT_EQ(again.out, ls.out);
  auto after = containerd.ctr(
      {"run", "--rm", "--snapshotter", "ferry", image, "after-restart", "/bin/sh", "-c", kListing});
  ASSERT_EQ(after.exit_code(), 0) << after.describe() << containerd.log_tail() << ferry.log();
  EXPECT_EQ(after.out, on_ferry.out);

  // The image removed and garbage collected: no snapshot, no directory is left.
  auto rm = containerd.ctr({"images", "rm", "--sync", image});
  ASSERT_EQ(rm.exit_code(), 0) << rm.describe();
  RunResult empty;
  EXPECT_TRUE(test::wait_until(
      [&] {
        empty = containerd.ctr({"snapshots", "--snapshotter", "ferry", "ls"}, 20s);
        return empty.exit_code() == 0 && test::lines_of(empty.out).size() <= 1 &&
               fs::is_empty(ferry.snapshots_dir());
      },
      60s))
      << empty.describe() << containerd.log_tail();
  EXPECT_TRUE(mounts_at_or_below(ferry_dir_.path()).empty());

  // The path Ferry images will take: ctr-remote's rpull passes the layer labels
  // (containerd.io/snapshot.ref, .../remote/stargz.*); an ordinary image still unpacks and runs.
  if (!fs::exists("/usr/bin/ctr-remote")) {
    std::printf("[ e2e    ] ctr-remote (stargz-snapshotter) is not installed: rpull not tried\n");
    return;
  }
  auto rpull = tool({"/usr/bin/ctr-remote", "-a", containerd.socket(), "-n", containerd.ns(), "images",
                     "rpull", "--plain-http", "--snapshotter", "ferry", image});
  ASSERT_EQ(rpull.exit_code(), 0) << rpull.describe() << containerd.log_tail() << ferry.log();
  auto remote = containerd.ctr(
      {"run", "--rm", "--snapshotter", "ferry", image, "after-rpull", "/bin/sh", "-c", kListing});
  ASSERT_EQ(remote.exit_code(), 0) << remote.describe() << containerd.log_tail() << ferry.log();
  EXPECT_EQ(remote.out, on_ferry.out);
  auto labelled = containerd.ctr({"snapshots", "--snapshotter", "ferry", "info", top});
  ASSERT_EQ(labelled.exit_code(), 0) << labelled.describe();
  EXPECT_NE(labelled.out.find("containerd.io/snapshot.ref"), std::string::npos) << labelled.out;
  auto rm_again = containerd.ctr({"images", "rm", "--sync", image});
  ASSERT_EQ(rm_again.exit_code(), 0) << rm_again.describe();
  EXPECT_TRUE(test::wait_until([&] { return fs::is_empty(ferry.snapshots_dir()); }, 60s));
}

}  // namespace
}  // namespace ferry::e2e
