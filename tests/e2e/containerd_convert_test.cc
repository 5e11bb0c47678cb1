// `ferry-image convert` against Debian's containerd 1.6 (a private instance, ContainerdServer) and
// Debian's docker-registry on 127.0.0.1, both started here:
//   (a) the ORIGINAL multi-layer OCI image (every entry kind, whiteouts, opaque dirs, less what
//       containerd's applier refuses, see containerd_layers(); pushed with skopeo) pulled by `ctr images
//       pull` and unpacked by containerd's own overlayfs snapshotter; a view of its top snapshot, mounted as
//       `ctr snapshots mounts` says, equals with zero differences the kernel's erofs mounting the
//       `--compressor none` Ferry image that `ferry-image convert` pushed;
//   (b) containerd's pull machinery (resolver, fetcher, content store, media-type handlers)
//       accepts the converted manifest: `ctr content fetch` stores every layer, config and the
//       manifest, verified by containerd against their digests, and the erofs image of (a) is
//       mounted from exactly those bytes in containerd's content store.
// The unpack of a converted image is containerd_ferry_image_test.cc's: `ctr-remote images rpull
// --snapshotter ferry` pulls it, the Ferry snapshotter skips the blob layers (their data is
// fetched lazily) and containerd unpacks the bootstrap layer; containerd's overlayfs applier
// alone would try to untar the blob layers.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/proc_files.h"
#include "e2e/containerd_fixture.h"
#include "e2e/erofs_fixture.h"
#include "e2e/feature_layers.h"
#include "e2e/tar_writer.h"
#include "e2e/tree_compare.h"
#include "oci/registry_fixture.h"

namespace ferry::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kToolDeadline = 180s;

class ContainerdConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = missing_prerequisite();
    if (missing.empty()) missing = ContainerdServer::missing_prerequisite();
    if (missing.empty() &&
        test::run_shell("command -v skopeo >/dev/null && command -v docker-registry >/dev/null") != 0)
      missing = "skopeo or docker-registry is not installed";
    if (!missing.empty()) GTEST_SKIP() << missing;
  }
  RunResult tool(const std::vector<std::string>& argv) {
    return run_with_deadline(argv, dir_.path(), kToolDeadline);
  }

  ImageDir dir_;
};

// A tar path without "./" and trailing slashes ("" is the root).
std::string clean(std::string p) {
  while (!p.empty() && p.back() == '/') p.pop_back();
  if (p == ".") return "";
  if (p.starts_with("./")) p.erase(0, 2);
  return p;
}
std::string parent_of(const std::string& p) {
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? "" : p.substr(0, slash);
}
std::string base_of(const std::string& p) {
  return p.substr(p.rfind('/') + 1);
}

// What a non-directory entry (or a whiteout) at `p` removes from the tree of directories.
void forget(std::map<std::string, TarEntry>& dirs, const std::string& p) {
  std::erase_if(dirs, [&](const auto& kv) { return kv.first == p || kv.first.starts_with(p + "/"); });
}

// feature_layers() adapted to how containerd 1.6's overlayfs applier works: it extracts each
// layer straight into the snapshot's upper directory, so
//  - a directory a layer does not declare but writes into is created with the unpack time
//    (image builders declare every parent; here each upper layer re-declares them as they are);
//  - a hard link to a lower layer's file fails the whole unpack ("link ...: no such file or
//    directory"), and a write through a lower layer's symlink (usrmerge) lands in a new upper
//    directory shadowing the symlink: both dropped;
//  - trusted.* xattrs are refused ("admin attributes from archive not supported"): dropped;
//  - a PAX xattr record with an empty value is SET (empty) by containerd but dropped by umoci and
//    ferry-image: dropped here (an open question for the builder, see the report);
//  - a whiteout of one name of a hard-link group leaves the others' nlink as the lower layer
//    counts it (overlayfs reports the lower inode's nlink): dropped.
// Everything else of feature_layers() stays. umoci takes all of it (ferry_image_test).
std::vector<std::vector<TarEntry>> containerd_layers() {
  auto layers = feature_layers();
  std::map<std::string, TarEntry> dirs;  // directories of the layers below, as last declared
  std::set<std::string> linked;          // names of hard-link groups below
  std::set<std::string> symlinks;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::vector<TarEntry> out;
    std::set<std::string> declared;
    std::set<std::string> paths;
    for (const auto& e : layers[i]) paths.insert(clean(e.path));
    for (const auto& e : layers[i]) {
      if (e.kind == TarEntry::Kind::kDir) declared.insert(clean(e.path));
    }
    for (TarEntry e : layers[i]) {
      const std::string p = clean(e.path);
      const std::string base = base_of(p);
      if (e.kind == TarEntry::Kind::kHardlink && paths.count(clean(e.link)) == 0) continue;
      if (symlinks.count(parent_of(p)) != 0) continue;
      if (base.starts_with(".wh.") && base != ".wh..wh..opq") {
        const std::string target = (parent_of(p).empty() ? "" : parent_of(p) + "/") + base.substr(4);
        if (linked.count(target) != 0) continue;
      }
      std::erase_if(e.xattrs,
                    [](const auto& x) { return x.first.starts_with("trusted.") || x.second.empty(); });
      // Re-declare the parents this layer writes into.
      if (i > 0 && !(e.kind == TarEntry::Kind::kDir && p.empty())) {
        std::vector<std::string> chain;
        for (std::string d = parent_of(p);; d = parent_of(d)) {
          chain.insert(chain.begin(), d);
          if (d.empty()) break;
        }
        if (p.find('/') == std::string::npos) chain = {""};
        for (const auto& d : chain) {
          if (declared.count(d) != 0 || dirs.count(d) == 0) continue;
          out.push_back(dirs.at(d));
          declared.insert(d);
        }
      }
      out.push_back(e);
    }
    // What this layer leaves for the next.
    for (const auto& e : out) {
      const std::string p = clean(e.path);
      const std::string base = base_of(p);
      if (base == ".wh..wh..opq") {
        forget(dirs, parent_of(p));
        if (!parent_of(p).empty()) dirs[parent_of(p)] = out.front();  // replaced below
      } else if (base.starts_with(".wh.")) {
        forget(dirs, (parent_of(p).empty() ? "" : parent_of(p) + "/") + base.substr(4));
      } else if (e.kind == TarEntry::Kind::kDir) {
        dirs[p] = e;
      } else {
        forget(dirs, p);
        if (e.kind == TarEntry::Kind::kSymlink) symlinks.insert(p);
        if (e.kind == TarEntry::Kind::kHardlink) {
          linked.insert(p);
          linked.insert(clean(e.link));
        }
      }
    }
    for (const auto& e : out) {  // an opaque dir keeps its own entry
      if (e.kind == TarEntry::Kind::kDir) dirs[clean(e.path)] = e;
    }
    layers[i] = std::move(out);
  }
  return layers;
}

// containerd's content store path of a blob.
std::string content_path(const ContainerdServer& c, const std::string& digest) {
  return c.dir() + "/root/io.containerd.content.v1.content/blobs/sha256/" +
         digest.substr(digest.find(':') + 1);
}

TEST_F(ContainerdConvertTest, OverlayfsUnpackOfTheOriginalEqualsKernelErofsOfTheConvertedImage) {
  oci::test::RegistryServer registry;
  ASSERT_TRUE(registry.ok());
  ContainerdServer containerd;
  ASSERT_TRUE(containerd.ok());

  // The original image: an OCI layout made here, pushed with skopeo.
  std::vector<std::string> gz, tars;
  for (const auto& layer : containerd_layers()) {
    tars.push_back(make_tar(layer));
    gz.push_back(make_tar(layer, TarCompression::kGzip));
  }
  write_oci_layout(dir_.path() + "/oci", "v1", gz, tars);
  const std::string original = registry.host() + "/orig/feature:v1";
  const std::string converted = registry.host() + "/ferry/feature:v1";
  auto pushed = tool({"/usr/bin/skopeo", "copy", "--dest-tls-verify=false", "oci:" + dir_.path() + "/oci:v1",
                      "docker://" + original});
  ASSERT_EQ(pushed.exit_code(), 0) << pushed.describe();

  // (a) containerd pulls and unpacks it with overlayfs; a view of the top snapshot is mounted.
  auto pull = containerd.ctr({"images", "pull", "--plain-http", original});
  ASSERT_EQ(pull.exit_code(), 0) << pull.describe() << containerd.log_tail();
  const std::string chain = chain_id(tars);
  const std::string view_dir = containerd.dir() + "/view";
  fs::create_directories(view_dir);
  // One call makes the view and prints its mount: containerd's GC may collect a view no lease
  // holds right after it is made (seen once in CI between `view` and a separate `mounts`); a
  // view's mount is read-only over the committed parents, which the image keeps.
  auto mounts = containerd.ctr({"snapshots", "view", "--target", view_dir, "orig-view", chain});
  ASSERT_EQ(mounts.exit_code(), 0) << mounts.describe();
  ASSERT_EQ(mounts.out.rfind("mount ", 0), 0U) << mounts.out;
  test::MountGuard view_guard(view_dir);
  auto mounted = tool({"/bin/sh", "-c", mounts.out});
  ASSERT_EQ(mounted.exit_code(), 0) << mounts.out << mounted.describe();

  // The Ferry image, converted from the registry copy.
  auto conv = tool({test::binary_path("ferry-image"), "convert", "--source", original, "--target", converted,
                    "--plain-http", "--compressor", "none"});
  ASSERT_EQ(conv.exit_code(), 0) << conv.describe();
  const auto summary = nlohmann::json::parse(conv.out);
  ASSERT_EQ(summary["blobs"].size(), 3U) << conv.out;

  // (b) containerd fetches the converted image: manifest, config and every layer.
  auto fetch = containerd.ctr({"content", "fetch", "--plain-http", converted});
  ASSERT_EQ(fetch.exit_code(), 0) << fetch.describe() << containerd.log_tail();
  auto ls = containerd.ctr({"content", "ls"});
  ASSERT_EQ(ls.exit_code(), 0) << ls.describe();
  std::vector<std::string> digests = {summary["manifest"].get<std::string>(),
                                      summary["bootstrap"]["digest"].get<std::string>()};
  for (const auto& b : summary["blobs"]) digests.push_back(b["digest"].get<std::string>());
  for (const auto& d : digests) {
    EXPECT_NE(ls.out.find(d), std::string::npos) << d << " not in containerd's content store:\n" << ls.out;
    EXPECT_TRUE(fs::exists(content_path(containerd, d))) << d;
  }
  auto check = containerd.ctr({"images", "check"});
  EXPECT_EQ(check.exit_code(), 0) << check.describe();
  EXPECT_NE(check.out.find(converted), std::string::npos) << check.out;

  // The bootstrap and blobs as containerd stored them, mounted by the kernel's erofs.
  const std::string boot_dir = dir_.path() + "/boot";
  fs::create_directories(boot_dir);
  auto untar =
      tool({"/bin/tar", "-xzf", content_path(containerd, summary["bootstrap"]["digest"]), "-C", boot_dir});
  ASSERT_EQ(untar.exit_code(), 0) << untar.describe();
  ErofsImage image;
  image.image = boot_dir + "/image/image.boot";
  for (const auto& b : summary["blobs"]) image.devices.push_back(content_path(containerd, b["digest"]));
  fs::create_directories(dir_.path() + "/erofs");
  KernelErofsMount erofs(image, dir_.path() + "/erofs");

  CompareOptions options = CompareOptions::erofs_vs_source();
  options.ignore_dir_nlink = true;   // overlayfs reports 1 for a directory merged from several layers
  options.ignore_root_mtime = true;  // containerd skips "./" entries: the root is its mkdir's
  const CompareResult result = compare_trees(view_dir, erofs.path(), options);
  EXPECT_TRUE(result.ok()) << result.report();
  std::printf("[ e2e    ] containerd overlayfs view vs kernel erofs of the converted image: %s\n",
              result.summary().c_str());
  EXPECT_GT(result.entries, 400U);

  // What containerd 1.6's own pull does with the converted image (its unpack needs the Ferry
  // snapshotter, issue 17): recorded, not asserted.
  auto pull_converted = containerd.ctr({"images", "pull", "--plain-http", converted});
  std::printf("[ e2e    ] ctr images pull (overlayfs) of the converted image: exit %d: %s\n",
              pull_converted.exit_code(), pull_converted.err.substr(0, 300).c_str());
}

// The fixture itself: a running container (runc, a rootfs of /bin/sleep and its libraries), its
// shim and shim socket, a mount left under the fixture's dir and containerd are all gone once the
// fixture is destroyed.
TEST_F(ContainerdConvertTest, FixtureTeardownLeavesNoProcessMountOrSocket) {
  if (test::run_shell("command -v runc >/dev/null") != 0) GTEST_SKIP() << "runc is not installed";
  const std::string rootfs = dir_.path() + "/rootfs";
  ASSERT_EQ(test::run_shell("mkdir -p " + rootfs + "/bin && cp /bin/sleep " + rootfs +
                      "/bin/ && for l in $(ldd /bin/sleep | grep -o '/[^ ]*'); do "
                      "mkdir -p " +
                      rootfs + "$(dirname $l) && cp -L $l " + rootfs + "$l; done"),
            0);
  std::string dir;
  std::vector<pid_t> processes;
  std::vector<std::string> sockets;
  pid_t containerd_pid = 0;
  {
    ContainerdServer containerd;
    ASSERT_TRUE(containerd.ok());
    dir = containerd.dir();
    containerd_pid = containerd.pid();
    auto run = containerd.ctr({"run", "-d", "--rootfs", rootfs, "sleeper", "/bin/sleep", "300"});
    ASSERT_EQ(run.exit_code(), 0) << run.describe() << containerd.log_tail();
    ASSERT_TRUE(test::wait_until([&] { return containerd.shim_processes().size() >= 2; }, 30s))
        << "no shim with a child for the task";
    processes = containerd.shim_processes();
    const std::string address =
        test::read_file(dir + "/state/io.containerd.runtime.v2.task/" + containerd.ns() + "/sleeper/address");
    ASSERT_EQ(address.rfind("unix://", 0), 0U) << address;
    sockets.push_back(address.substr(7, address.find_last_not_of("\n ") - 6));
    EXPECT_TRUE(fs::exists(sockets.back())) << sockets.back();
    auto view_dir = dir + "/view";
    fs::create_directories(view_dir);
    ASSERT_EQ(test::run_shell("mount --bind " + rootfs + " " + view_dir), 0);  // a mount the test "forgot"
  }
  EXPECT_TRUE(mounts_at_or_below(dir).empty());
  EXPECT_FALSE(process_alive(containerd_pid)) << "containerd " << containerd_pid << " is still running";
  for (const pid_t pid : processes)
    EXPECT_FALSE(process_alive(pid)) << "process " << pid << " is still running";
  for (const auto& socket : sockets) EXPECT_FALSE(fs::exists(socket)) << socket;
}

}  // namespace
}  // namespace ferry::e2e
