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
#include "e2e/ferry_snapshotter_fixture.h"
#include "e2e/tar_writer.h"
#include "oci/registry_fixture.h"

namespace ferry::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using ContainerdSnapshotterTest = ContainerdSnapshotterFixture;

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

  image_.make();
  write_oci_layout(dir_.path() + "/oci", "v1", image_.gz, image_.tars);
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
  image_.expect_listing(on_ferry.out);
  const auto listing = test::lines_of(on_ferry.out);

  // The same image on containerd's own overlayfs snapshotter says the same.
  auto pull_overlay = containerd.ctr({"images", "pull", "--plain-http", image});
  ASSERT_EQ(pull_overlay.exit_code(), 0) << pull_overlay.describe();
  auto on_overlay = containerd.ctr({"run", "--rm", image, "on-overlay", "/bin/sh", "-c", kListing});
  ASSERT_EQ(on_overlay.exit_code(), 0) << on_overlay.describe();
  EXPECT_EQ(on_ferry.out, on_overlay.out);

  // The layers are Ferry's committed snapshots, the top one named by the image's chain id.
  auto ls = containerd.ctr({"snapshots", "--snapshotter", "ferry", "ls"});
  ASSERT_EQ(ls.exit_code(), 0) << ls.describe();
  const std::string top = chain_id(image_.tars);
  EXPECT_NE(ls.out.find(top), std::string::npos) << ls.out;
  EXPECT_EQ(test::lines_of(ls.out).size(), 1U + image_.tars.size()) << ls.out;  // a header and one line per layer
  // ...each with its directory under Ferry's root (the containers' active snapshots are gone).
  EXPECT_EQ(static_cast<size_t>(std::distance(fs::directory_iterator(ferry.snapshots_dir()), {})),
            image_.tars.size());
  std::printf("[ e2e    ] container on ferry listed %zu paths, equal to overlayfs: %s\n%s", listing.size(),
              on_ferry.out == on_overlay.out ? "yes" : "no", ls.out.c_str());

  // ferry-snapshotter dies and comes back: containerd redials, nothing is lost.
  ferry.kill();
  ASSERT_TRUE(ferry.start()) << ferry.log();
  RunResult again = list_ferry_snapshots(containerd);
  ASSERT_EQ(again.exit_code(), 0) << again.describe();
  EXPECT_EQ(again.out, ls.out);
  auto after = containerd.ctr(
      {"run", "--rm", "--snapshotter", "ferry", image, "after-restart", "/bin/sh", "-c", kListing});
  ASSERT_EQ(after.exit_code(), 0) << after.describe() << containerd.log_tail() << ferry.log();
  EXPECT_EQ(after.out, on_ferry.out);

  // The image removed and garbage collected: no snapshot, no directory is left.
  auto rm = containerd.ctr({"images", "rm", "--sync", image});
  ASSERT_EQ(rm.exit_code(), 0) << rm.describe();
  expect_no_snapshots_left(containerd, ferry);
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
