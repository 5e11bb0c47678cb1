// The snapshotter's rules for Ferry images (snapshotter.h, ferry_labels.h), on a real database
// and snapshot directory: blob layers committed at once (AlreadyExists), labels that make no
// sense refused with EINVAL naming them and recording nothing, the bootstrap marked at commit,
// containers over it getting the ferryd mount as lower dir, one daemon per image counted by the
// bootstrap's children, and a daemon that cannot start leaving no snapshot. The daemon starter
// is a recording seam here (RecordingMounter, with fault injection); the real one, with ferryd
// and containerd, is proven in tests/e2e/containerd_ferry_image_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "support/test_support.h"
#include "manager/store.h"
#include "snapshotter/ferry_labels.h"
#include "snapshotter/snapshotter.h"

namespace ferry::snapshotter {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kDigest = "sha256:" + std::string(64, 'a');
const std::string kImage = "127.0.0.1:5000/ns/app:v1";

class RecordingMounter final : public FerryMounter {
 public:
  Status mount(const FerryImage& image) override {
    calls.push_back(image);
    if (fail) return Error{EIO, "the image's registry does not answer: injected"};
    live.insert(image.mountpoint);
    return ok_status();
  }
  Status umount(const std::string& mountpoint) override {
    umounts.push_back(mountpoint);
    live.erase(mountpoint);
    return ok_status();
  }
  [[nodiscard]] bool mounted(const std::string& mountpoint) const override { return live.count(mountpoint) != 0; }

  bool fail = false;
  std::vector<FerryImage> calls;
  std::vector<std::string> umounts;
  std::set<std::string> live;
};

class FerryLayersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = manager::ManagerStore::open(dir_ / "ferry.db");
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    auto s = Snapshotter::open(*store_, dir_ / "snapshots");
    ASSERT_TRUE(s.ok()) << s.error().message;
    snap_.emplace(std::move(*s));
  }

  static Labels blob_labels(const std::string& chain_id) {
    return {{"containerd.io/snapshot.ref", chain_id},
            {"containerd.io/snapshot/ferry-blob", "true"},
            {"containerd.io/snapshot/remote/stargz.reference", kImage},
            {"containerd.io/snapshot/remote/stargz.digest", kDigest},
            {"containerd.io/snapshot/remote/stargz.layers", kDigest + "," + kDigest}};
  }
  static Labels bootstrap_labels() {
    return {{"containerd.io/snapshot.ref", "sha256:boot"},
            {"containerd.io/snapshot/ferry-bootstrap", "true"},
            {"containerd.io/snapshot/cri.image-ref", kImage}};
  }

  // A blob layer and a committed bootstrap over it, as an rpull leaves them.
  void pull() {
    auto blob = snap_->prepare("extract-1", "", blob_labels("sha256:blob"));
    ASSERT_FALSE(blob.ok());
    ASSERT_EQ(blob.error().code, EEXIST) << blob.error().message;
    ASSERT_TRUE(snap_->prepare("extract-2", "sha256:blob", bootstrap_labels()).ok());
    auto r = snap_->stat("extract-2");
    ASSERT_TRUE(r.ok());
    fs::create_directories(snap_->fs_dir(r->id) + "/image");
    std::ofstream(snap_->fs_dir(r->id) + "/image/image.boot") << "erofs";
    Status st = snap_->commit("sha256:boot", "extract-2", {{"containerd.io/snapshot.ref", "sha256:boot"}});
    ASSERT_TRUE(st.ok()) << st.error().message;
  }
  int64_t id_of(const std::string& key) { return snap_->stat(key)->id; }

  test::TempDir dir_;
  std::unique_ptr<manager::ManagerStore> store_;
  std::optional<Snapshotter> snap_;
  RecordingMounter mounter_;
};

TEST_F(FerryLayersTest, BlobLayerIsCommittedUnderItsRefAndAnswersAlreadyExists) {
  auto first = snap_->prepare("ns/1/extract-1 sha256:c1", "", blob_labels("sha256:c1"));
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, EEXIST);
  auto r = snap_->stat("sha256:c1");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->kind, SnapshotKind::kCommitted);
  EXPECT_EQ(r->labels.at("containerd.io/snapshot.ref"), "sha256:c1");
  EXPECT_EQ(r->labels.at("containerd.io/snapshot/ferry-blob"), "true");
  EXPECT_EQ(r->labels.at("containerd.io/snapshot/remote/stargz.reference"), kImage);
  EXPECT_EQ(r->labels.at("containerd.io/snapshot/remote/stargz.digest"), kDigest);
  EXPECT_EQ(r->labels.count("containerd.io/snapshot/remote/stargz.layers"), 0U);
  EXPECT_EQ(snap_->stat("ns/1/extract-1 sha256:c1").error().code, ENOENT);
  EXPECT_TRUE(fs::is_empty(snap_->fs_dir(r->id)));
  // Pulled again: the same answer, still one snapshot.
  auto again = snap_->prepare("ns/1/extract-2 sha256:c1", "", blob_labels("sha256:c1"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, EEXIST);
  EXPECT_EQ(snap_->list()->size(), 1U);
  // The next blob layer over it.
  auto second = snap_->prepare("ns/1/extract-3 sha256:c2", "sha256:c1", blob_labels("sha256:c2"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(snap_->stat("sha256:c2")->parent, "sha256:c1");
}

TEST_F(FerryLayersTest, LabelsThatMakeNoSenseAreRefusedNamingThemAndRecordNothing) {
  auto expect_refused = [&](Labels labels, const std::string& named) {
    auto r = snap_->prepare("k", "", labels);
    ASSERT_FALSE(r.ok()) << named;
    EXPECT_EQ(r.error().code, EINVAL) << r.error().message;
    EXPECT_THAT(r.error().message, HasSubstr(named));
    EXPECT_TRUE(snap_->list()->empty());
    EXPECT_TRUE(fs::is_empty(snap_->dir()));
  };
  Labels l = blob_labels("sha256:c1");
  l["containerd.io/snapshot/ferry-blob"] = "yes";
  expect_refused(l, "containerd.io/snapshot/ferry-blob");
  l = blob_labels("sha256:c1");
  l.erase("containerd.io/snapshot.ref");
  expect_refused(l, "containerd.io/snapshot.ref");
  l = blob_labels("sha256:c1");
  l["containerd.io/snapshot/remote/stargz.reference"] = "busybox";
  expect_refused(l, "containerd.io/snapshot/remote/stargz.reference");
  l = blob_labels("sha256:c1");
  l["containerd.io/snapshot/remote/stargz.reference"] = "oci:/tmp/layout";
  expect_refused(l, "not a registry reference");
  l = blob_labels("sha256:c1");
  l["containerd.io/snapshot/remote/stargz.digest"] = "sha256:short";
  expect_refused(l, "containerd.io/snapshot/remote/stargz.digest");
  l = bootstrap_labels();
  l.erase("containerd.io/snapshot/cri.image-ref");
  expect_refused(l, "containerd.io/snapshot/cri.image-ref");
  l = bootstrap_labels();
  l["containerd.io/snapshot/ferry-bootstrap"] = "1";
  expect_refused(l, "containerd.io/snapshot/ferry-bootstrap");
}

TEST_F(FerryLayersTest, BootstrapIsMarkedAtCommitAndMustHoldImageBoot) {
  pull();
  auto boot = snap_->stat("sha256:boot");
  ASSERT_TRUE(boot.ok());
  EXPECT_EQ(boot->labels.at("containerd.io/snapshot/ferry-bootstrap"), "true");
  EXPECT_EQ(boot->labels.at("containerd.io/snapshot/cri.image-ref"), kImage);

  ASSERT_TRUE(snap_->prepare("extract-3", "sha256:blob", bootstrap_labels()).ok());
  Status st = snap_->commit("sha256:boot2", "extract-3", {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EINVAL);
  EXPECT_THAT(st.error().message, HasSubstr("image/image.boot"));
  EXPECT_EQ(snap_->stat("sha256:boot2").error().code, ENOENT);
}

TEST_F(FerryLayersTest, ContainersShareOneDaemonPerImageStoppedWithTheLastOfThem) {
  pull();
  // Before the manager is ready: Unavailable, nothing made.
  auto early = snap_->prepare("c1", "sha256:boot", {});
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, EAGAIN);
  EXPECT_EQ(snap_->stat("c1").error().code, ENOENT);

  snap_->set_ferry_mounter(&mounter_);
  const int64_t boot = id_of("sha256:boot");
  const std::string mnt = snap_->mnt_dir(boot);
  auto c1 = snap_->prepare("c1", "sha256:boot", {});
  ASSERT_TRUE(c1.ok()) << c1.error().message;
  ASSERT_EQ(mounter_.calls.size(), 1U);
  const FerryImage& image = mounter_.calls[0];
  EXPECT_EQ(image.mountpoint, mnt);
  EXPECT_TRUE(fs::is_directory(mnt));
  EXPECT_EQ(image.bootstrap, snap_->fs_dir(boot) + "/image/image.boot");
  EXPECT_EQ(image.ref.host, "127.0.0.1:5000");
  EXPECT_EQ(image.ref.repository, "ns/app");
  EXPECT_EQ(image.blob_digest, kDigest);
  ASSERT_EQ(c1->size(), 1U);
  EXPECT_EQ((*c1)[0].type, "overlay");
  EXPECT_THAT((*c1)[0].options, ::testing::Contains("lowerdir=" + mnt));
  EXPECT_THAT((*c1)[0].options, ::testing::Contains("upperdir=" + snap_->fs_dir(id_of("c1"))));
  EXPECT_EQ(snap_->mounts("c1").value(), *c1);

  auto c2 = snap_->prepare("c2", "sha256:boot", {});
  ASSERT_TRUE(c2.ok());
  auto v = snap_->view("v", "sha256:boot", {});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (std::vector<Mount>{Mount{"bind", mnt, {"ro", "rbind"}}}));
  EXPECT_EQ(mounter_.calls.size(), 1U) << "one daemon per image";

  // A layer committed over the image: its children get it above the daemon's mount.
  ASSERT_TRUE(snap_->commit("layer", "c2", {}).ok());
  auto c3 = snap_->prepare("c3", "layer", {});
  ASSERT_TRUE(c3.ok());
  EXPECT_THAT((*c3)[0].options,
              ::testing::Contains("lowerdir=" + snap_->fs_dir(id_of("layer")) + ":" + mnt));

  for (const char* key : {"c1", "v", "c3"}) {
    ASSERT_TRUE(snap_->remove(key).ok());
    EXPECT_TRUE(mounter_.umounts.empty()) << key;
  }
  ASSERT_TRUE(snap_->remove("layer").ok());
  EXPECT_EQ(mounter_.umounts, std::vector<std::string>{mnt});
  EXPECT_TRUE(mounter_.live.empty());
  // The image removed: its files go, nothing is left.
  ASSERT_TRUE(snap_->remove("sha256:boot").ok());
  ASSERT_TRUE(snap_->remove("sha256:blob").ok());
  EXPECT_TRUE(fs::is_empty(snap_->dir()));
}

TEST_F(FerryLayersTest, ADaemonThatCannotStartLeavesNoSnapshot) {
  pull();
  snap_->set_ferry_mounter(&mounter_);
  mounter_.fail = true;
  auto r = snap_->prepare("c1", "sha256:boot", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EIO);
  EXPECT_THAT(r.error().message, HasSubstr("registry does not answer"));
  EXPECT_THAT(r.error().message, HasSubstr(kImage));
  EXPECT_EQ(snap_->stat("c1").error().code, ENOENT);
  EXPECT_EQ(snap_->list()->size(), 2U);
  // Back: the next Prepare starts it.
  mounter_.fail = false;
  EXPECT_TRUE(snap_->prepare("c1", "sha256:boot", {}).ok());
  EXPECT_EQ(mounter_.live.size(), 1U);
}

}  // namespace
}  // namespace ferry::snapshotter
