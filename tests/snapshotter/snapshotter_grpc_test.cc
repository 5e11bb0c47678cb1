// The containerd snapshotter through its real gRPC face: the generated client stub talks to
// GrpcServer over a private unix socket, as containerd's proxy plugin does. Every RPC, every
// error code containerd maps, the directories and mounts of containerd's overlayfs snapshotter,
// and records that outlive a restart of the server and the database.
#include <github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include "common/unique_fd.h"
#include "manager/store.h"
#include "snapshotter/grpc_service.h"
#include "snapshotter/snapshotter.h"
#include "support/test_support.h"

namespace ferry::snapshotter {
namespace {

namespace api = containerd::services::snapshots::v1;
namespace fs = std::filesystem;
using ::testing::HasSubstr;

// One running service: database, snapshot directory, server, client. restart() tears all of it
// down and opens it again from the same files, as a restarted ferry-snapshotter does.
class Service {
 public:
  explicit Service(const test::TempDir& dir) : dir_(dir) { open(); }
  ~Service() { close(); }

  void restart() {
    close();
    open();
  }

  api::Snapshots::Stub& stub() { return *stub_; }
  [[nodiscard]] std::string socket() const { return dir_ / "run/grpc.sock"; }
  [[nodiscard]] std::string snapshots() const { return dir_ / "root/snapshots"; }
  Snapshotter& snapshotter() { return *snapshotter_; }

 private:
  void open() {
    auto store = manager::ManagerStore::open(dir_ / "root/ferry.db");
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    auto s = Snapshotter::open(*store_, snapshots());
    ASSERT_TRUE(s.ok()) << s.error().message;
    snapshotter_.emplace(std::move(*s));
    auto server = GrpcServer::start(socket(), *snapshotter_);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel("unix:" + socket(), grpc::InsecureChannelCredentials());
    stub_ = api::Snapshots::NewStub(channel);
  }
  void close() {
    stub_.reset();
    server_.reset();
    snapshotter_.reset();
    store_.reset();
  }

  const test::TempDir& dir_;
  std::unique_ptr<manager::ManagerStore> store_;
  std::optional<Snapshotter> snapshotter_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<api::Snapshots::Stub> stub_;
};

// Each call with a deadline: a hung server fails the test instead of hanging it.
struct Ctx {
  grpc::ClientContext ctx;
  Ctx() { ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20)); }
  grpc::ClientContext* operator&() { return &ctx; }
};

struct Call {
  grpc::Status status;
  std::vector<containerd::types::Mount> mounts;
};

class SnapshotterGrpc : public ::testing::Test {
 protected:
  Call prepare(const std::string& key, const std::string& parent = "",
               const std::map<std::string, std::string>& labels = {}) {
    api::PrepareSnapshotRequest req;
    req.set_snapshotter("ferry");
    req.set_key(key);
    req.set_parent(parent);
    req.mutable_labels()->insert(labels.begin(), labels.end());
    api::PrepareSnapshotResponse resp;
    Ctx c;
    Call out{svc_.stub().Prepare(&c, req, &resp), {}};
    out.mounts.assign(resp.mounts().begin(), resp.mounts().end());
    return out;
  }
  Call view(const std::string& key, const std::string& parent = "") {
    api::ViewSnapshotRequest req;
    req.set_key(key);
    req.set_parent(parent);
    api::ViewSnapshotResponse resp;
    Ctx c;
    Call out{svc_.stub().View(&c, req, &resp), {}};
    out.mounts.assign(resp.mounts().begin(), resp.mounts().end());
    return out;
  }
  Call mounts(const std::string& key) {
    api::MountsRequest req;
    req.set_key(key);
    api::MountsResponse resp;
    Ctx c;
    Call out{svc_.stub().Mounts(&c, req, &resp), {}};
    out.mounts.assign(resp.mounts().begin(), resp.mounts().end());
    return out;
  }
  grpc::Status commit(const std::string& name, const std::string& key,
                      const std::map<std::string, std::string>& labels = {}) {
    api::CommitSnapshotRequest req;
    req.set_name(name);
    req.set_key(key);
    req.mutable_labels()->insert(labels.begin(), labels.end());
    google::protobuf::Empty resp;
    Ctx c;
    return svc_.stub().Commit(&c, req, &resp);
  }
  grpc::Status remove(const std::string& key) {
    api::RemoveSnapshotRequest req;
    req.set_key(key);
    google::protobuf::Empty resp;
    Ctx c;
    return svc_.stub().Remove(&c, req, &resp);
  }
  grpc::Status stat(const std::string& key, api::Info* info) {
    api::StatSnapshotRequest req;
    req.set_key(key);
    api::StatSnapshotResponse resp;
    Ctx c;
    grpc::Status st = svc_.stub().Stat(&c, req, &resp);
    *info = resp.info();
    return st;
  }
  grpc::Status update(const std::string& key, const std::map<std::string, std::string>& labels,
                      const std::vector<std::string>& paths, api::Info* info) {
    api::UpdateSnapshotRequest req;
    req.mutable_info()->set_name(key);
    req.mutable_info()->mutable_labels()->insert(labels.begin(), labels.end());
    for (const auto& p : paths) req.mutable_update_mask()->add_paths(p);
    api::UpdateSnapshotResponse resp;
    Ctx c;
    grpc::Status st = svc_.stub().Update(&c, req, &resp);
    *info = resp.info();
    return st;
  }
  grpc::Status usage(const std::string& key, api::UsageResponse* out) {
    api::UsageRequest req;
    req.set_key(key);
    Ctx c;
    return svc_.stub().Usage(&c, req, out);
  }
  std::map<std::string, api::Info> list() {
    api::ListSnapshotsRequest req;
    Ctx c;
    auto reader = svc_.stub().List(&c, req);
    std::map<std::string, api::Info> out;
    api::ListSnapshotsResponse batch;
    while (reader->Read(&batch)) {
      for (const auto& i : batch.info()) out[i.name()] = i;
    }
    grpc::Status st = reader->Finish();
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  }
  grpc::Status cleanup() {
    api::CleanupRequest req;
    google::protobuf::Empty resp;
    Ctx c;
    return svc_.stub().Cleanup(&c, req, &resp);
  }

  // The fs directory a bind mount names, or the upperdir of an overlay.
  static std::string upper_of(const std::vector<containerd::types::Mount>& m) {
    if (m.size() != 1) return "";
    if (m[0].type() == "bind") return m[0].source();
    for (const auto& o : m[0].options()) {
      if (o.rfind("upperdir=", 0) == 0) return o.substr(9);
    }
    return "";
  }
  static std::vector<std::string> options(const containerd::types::Mount& m) {
    return {m.options().begin(), m.options().end()};
  }
  static std::string option(const containerd::types::Mount& m, const std::string& prefix) {
    for (const auto& o : m.options()) {
      if (o.rfind(prefix, 0) == 0) return o.substr(prefix.size());
    }
    return "";
  }

  // An active snapshot with `file` written into it, committed as `name`.
  void layer(const std::string& name, const std::string& parent, const std::string& file) {
    Call p = prepare("extract-" + name, parent);
    ASSERT_TRUE(p.status.ok()) << p.status.error_message();
    std::ofstream(upper_of(p.mounts) + "/" + file) << name;
    grpc::Status st = commit(name, "extract-" + name);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  test::TempDir dir_;
  Service svc_{dir_};
};

TEST_F(SnapshotterGrpc, TheSocketIsPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat(svc_.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir_ / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(SnapshotterGrpc, PrepareWithoutParentIsARwBindOfItsFsDir) {
  Call p = prepare("ns/1/a");
  ASSERT_TRUE(p.status.ok()) << p.status.error_message();
  ASSERT_EQ(p.mounts.size(), 1u);
  EXPECT_EQ(p.mounts[0].type(), "bind");
  EXPECT_THAT(p.mounts[0].source(), ::testing::StartsWith(svc_.snapshots() + "/"));
  EXPECT_THAT(p.mounts[0].source(), ::testing::EndsWith("/fs"));
  EXPECT_THAT(options(p.mounts[0]), ::testing::ElementsAre("rw", "rbind"));
  EXPECT_TRUE(fs::is_directory(p.mounts[0].source()));
  EXPECT_TRUE(fs::is_directory(fs::path(p.mounts[0].source()).parent_path() / "work"));

  Call m = mounts("ns/1/a");
  ASSERT_TRUE(m.status.ok()) << m.status.error_message();
  ASSERT_EQ(m.mounts.size(), 1u);
  EXPECT_EQ(m.mounts[0].source(), p.mounts[0].source());

  api::Info info;
  ASSERT_TRUE(stat("ns/1/a", &info).ok());
  EXPECT_EQ(info.name(), "ns/1/a");
  EXPECT_EQ(info.kind(), api::ACTIVE);
  EXPECT_EQ(info.parent(), "");
  EXPECT_GT(info.created_at().seconds(), 0);
}

TEST_F(SnapshotterGrpc, ActiveOverParentsIsAnOverlayNearestLowerFirst) {
  layer("l1", "", "one");
  layer("l2", "l1", "two");
  Call p = prepare("container", "l2");
  ASSERT_TRUE(p.status.ok()) << p.status.error_message();
  ASSERT_EQ(p.mounts.size(), 1u);
  EXPECT_EQ(p.mounts[0].type(), "overlay");
  EXPECT_EQ(p.mounts[0].source(), "overlay");
  std::string lower = option(p.mounts[0], "lowerdir=");
  auto colon = lower.find(':');
  ASSERT_NE(colon, std::string::npos) << lower;
  EXPECT_TRUE(fs::exists(lower.substr(0, colon) + "/two")) << lower;  // l2 first
  EXPECT_TRUE(fs::exists(lower.substr(colon + 1) + "/one")) << lower;
  std::string upper = option(p.mounts[0], "upperdir=");
  std::string work = option(p.mounts[0], "workdir=");
  EXPECT_THAT(upper, ::testing::EndsWith("/fs"));
  EXPECT_EQ(fs::path(work).parent_path(), fs::path(upper).parent_path());
  EXPECT_TRUE(fs::is_directory(upper));
  EXPECT_TRUE(fs::is_directory(work));
}

// The container's "/" is its upper dir: it takes the owner and mode of the image's top layer root.
TEST_F(SnapshotterGrpc, AnUpperDirTakesItsParentsRootOwnerAndMode) {
  Call p = prepare("extract-l1");
  ASSERT_TRUE(p.status.ok());
  const std::string lower = upper_of(p.mounts);
  ASSERT_EQ(::chown(lower.c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod(lower.c_str(), 0750), 0);
  ASSERT_TRUE(commit("l1", "extract-l1").ok());
  Call c = prepare("container", "l1");
  ASSERT_TRUE(c.status.ok());
  ASSERT_EQ(c.mounts.size(), 1u);
  struct stat st {};
  ASSERT_EQ(::stat(option(c.mounts[0], "upperdir=").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  // Without a parent: containerd's 0755, whatever the umask.
  Call alone = prepare("alone");
  ASSERT_TRUE(alone.status.ok());
  ASSERT_EQ(::stat(upper_of(alone.mounts).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat(fs::path(upper_of(alone.mounts)).parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(SnapshotterGrpc, ViewsAreReadOnly) {
  layer("l1", "", "one");
  layer("l2", "l1", "two");
  Call alone = view("v0");
  ASSERT_TRUE(alone.status.ok()) << alone.status.error_message();
  ASSERT_EQ(alone.mounts.size(), 1u);
  EXPECT_EQ(alone.mounts[0].type(), "bind");
  EXPECT_THAT(options(alone.mounts[0]), ::testing::ElementsAre("ro", "rbind"));

  Call one = view("v1", "l1");
  ASSERT_TRUE(one.status.ok()) << one.status.error_message();
  ASSERT_EQ(one.mounts.size(), 1u);
  EXPECT_EQ(one.mounts[0].type(), "bind");
  EXPECT_TRUE(fs::exists(one.mounts[0].source() + "/one"));
  EXPECT_THAT(options(one.mounts[0]), ::testing::ElementsAre("ro", "rbind"));

  Call two = view("v2", "l2");
  ASSERT_TRUE(two.status.ok()) << two.status.error_message();
  ASSERT_EQ(two.mounts.size(), 1u);
  EXPECT_EQ(two.mounts[0].type(), "overlay");
  EXPECT_EQ(option(two.mounts[0], "upperdir="), "");
  EXPECT_EQ(option(two.mounts[0], "workdir="), "");
  EXPECT_THAT(option(two.mounts[0], "lowerdir="), HasSubstr(":"));

  api::Info info;
  ASSERT_TRUE(stat("v2", &info).ok());
  EXPECT_EQ(info.kind(), api::VIEW);
  EXPECT_EQ(info.parent(), "l2");
  // A view is never committed.
  EXPECT_EQ(commit("v2c", "v2").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(SnapshotterGrpc, CommitTurnsTheActiveKeyIntoANamedCommittedSnapshot) {
  Call p = prepare("extract-1");
  ASSERT_TRUE(p.status.ok());
  std::ofstream(upper_of(p.mounts) + "/data") << std::string(10000, 'x');
  ASSERT_TRUE(commit("layer", "extract-1", {{"containerd.io/snapshot.ref", "sha256:abc"}}).ok());

  api::Info info;
  EXPECT_EQ(stat("extract-1", &info).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(stat("layer", &info).ok());
  EXPECT_EQ(info.kind(), api::COMMITTED);
  EXPECT_EQ(info.labels().at("containerd.io/snapshot.ref"), "sha256:abc");
  EXPECT_EQ(mounts("layer").status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  api::UsageResponse u;
  ASSERT_TRUE(usage("layer", &u).ok());
  EXPECT_GE(u.size(), 10000);
  EXPECT_EQ(u.inodes(), 2);  // fs and data

  // A committed snapshot is not committed again, and a name is not taken twice.
  EXPECT_EQ(commit("again", "layer").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(prepare("extract-2").status.ok());
  EXPECT_EQ(commit("layer", "extract-2").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(commit("x", "missing").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(stat("extract-2", &info).ok()) << "a refused commit leaves the active snapshot alone";
}

TEST_F(SnapshotterGrpc, UsageOfAnActiveSnapshotIsMeasuredNow) {
  Call p = prepare("a");
  ASSERT_TRUE(p.status.ok());
  api::UsageResponse before;
  ASSERT_TRUE(usage("a", &before).ok());
  EXPECT_EQ(before.inodes(), 1);
  fs::create_directory(upper_of(p.mounts) + "/d");
  std::ofstream(upper_of(p.mounts) + "/d/f") << std::string(50000, 'y');
  fs::create_hard_link(upper_of(p.mounts) + "/d/f", upper_of(p.mounts) + "/d/g");
  api::UsageResponse after;
  ASSERT_TRUE(usage("a", &after).ok());
  EXPECT_EQ(after.inodes(), 3) << "a hard link is one inode";
  EXPECT_GE(after.size(), before.size() + 50000);
  EXPECT_LT(after.size(), before.size() + 2 * 50000 + 65536) << "a hard link is counted once";
  EXPECT_EQ(usage("nope", &after).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SnapshotterGrpc, KeysAndNamesShareOneSpace) {
  ASSERT_TRUE(prepare("k").status.ok());
  EXPECT_EQ(prepare("k").status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(view("k").status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  layer("c", "", "f");
  EXPECT_EQ(prepare("c").status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(SnapshotterGrpc, ParentsMustExistAndBeCommitted) {
  size_t before = static_cast<size_t>(std::distance(fs::directory_iterator(svc_.snapshots()), {}));
  Call missing = prepare("child", "no-such-parent");
  EXPECT_EQ(missing.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(missing.status.error_message(), HasSubstr("parent snapshot 'no-such-parent' does not exist"));
  ASSERT_TRUE(prepare("active").status.ok());
  Call active = prepare("child", "active");
  EXPECT_EQ(active.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(active.status.error_message(), HasSubstr("not a committed"));
  EXPECT_EQ(view("child", "active").status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(prepare("").status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Refused calls leave nothing: one directory for "active", none for "child".
  api::Info info;
  EXPECT_EQ(stat("child", &info).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(static_cast<size_t>(std::distance(fs::directory_iterator(svc_.snapshots()), {})), before + 1);
}

TEST_F(SnapshotterGrpc, LabelsAreCheckedLikeContainerdDoes) {
  std::string big(4097, 'v');
  Call p = prepare("a", "", {{"k", big}});
  EXPECT_EQ(p.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(p.status.error_message(), HasSubstr("4096"));
  ASSERT_TRUE(prepare("a", "", {{"k", std::string(4095, 'v')}}).status.ok());
}

TEST_F(SnapshotterGrpc, RemoveRefusesASnapshotWithChildrenAndDeletesItsFiles) {
  layer("base", "", "f");
  Call c = prepare("container", "base");
  ASSERT_TRUE(c.status.ok());
  grpc::Status refused = remove("base");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("children"));
  std::string top = fs::path(option(c.mounts[0], "upperdir=")).parent_path();
  ASSERT_TRUE(fs::exists(top));
  ASSERT_TRUE(remove("container").ok());
  EXPECT_FALSE(fs::exists(top));
  ASSERT_TRUE(remove("base").ok());
  EXPECT_EQ(remove("base").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(fs::is_empty(svc_.snapshots()));
  EXPECT_TRUE(list().empty());
}

TEST_F(SnapshotterGrpc, UpdateChangesLabelsOnly) {
  ASSERT_TRUE(prepare("a", "", {{"keep", "1"}, {"drop", "2"}}).status.ok());
  api::Info info;
  // One label by its path: set one, remove another (absent from the info), keep the rest.
  ASSERT_TRUE(update("a", {{"new", "3"}}, {"labels.new", "labels.drop"}, &info).ok());
  EXPECT_THAT(info.labels(),
              ::testing::UnorderedElementsAre(::testing::Pair("keep", "1"), ::testing::Pair("new", "3")));
  // "labels" (or no mask) replaces them all.
  ASSERT_TRUE(update("a", {{"only", "4"}}, {"labels"}, &info).ok());
  EXPECT_THAT(info.labels(), ::testing::UnorderedElementsAre(::testing::Pair("only", "4")));
  ASSERT_TRUE(update("a", {}, {}, &info).ok());
  EXPECT_TRUE(info.labels().empty());
  EXPECT_EQ(info.kind(), api::ACTIVE);

  grpc::Status st = update("a", {}, {"kind"}, &info);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("kind"));
  EXPECT_EQ(update("a", {}, {"labels."}, &info).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(update("missing", {}, {}, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(stat("a", &info).ok());
  EXPECT_GE(info.updated_at().seconds(), info.created_at().seconds());
}

TEST_F(SnapshotterGrpc, ListStreamsEverySnapshot) {
  for (int i = 0; i < 250; ++i) ASSERT_TRUE(prepare("k" + std::to_string(i)).status.ok());
  layer("c", "", "f");
  auto all = list();
  EXPECT_EQ(all.size(), 251u);  // more than one batch
  EXPECT_EQ(all.at("c").kind(), api::COMMITTED);
  EXPECT_EQ(all.at("k7").kind(), api::ACTIVE);
}

TEST_F(SnapshotterGrpc, CleanupRemovesDirectoriesNoRecordNames) {
  Call p = prepare("a");
  ASSERT_TRUE(p.status.ok());
  fs::create_directories(svc_.snapshots() + "/rm-3/fs");
  fs::create_directories(svc_.snapshots() + "/0/fs");
  ASSERT_TRUE(cleanup().ok());
  EXPECT_FALSE(fs::exists(svc_.snapshots() + "/rm-3"));
  EXPECT_FALSE(fs::exists(svc_.snapshots() + "/0"));
  EXPECT_TRUE(fs::is_directory(upper_of(p.mounts)));
}

TEST_F(SnapshotterGrpc, ARestartLosesNothing) {
  layer("l1", "", "one");
  Call p = prepare("container", "l1", {{"x", "y"}});
  ASSERT_TRUE(p.status.ok());
  svc_.restart();
  auto all = list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at("l1").kind(), api::COMMITTED);
  EXPECT_EQ(all.at("container").parent(), "l1");
  EXPECT_EQ(all.at("container").labels().at("x"), "y");
  Call m = mounts("container");
  ASSERT_TRUE(m.status.ok());
  EXPECT_EQ(options(m.mounts[0]), options(p.mounts[0]));
  // New ids do not collide with the old ones.
  Call q = prepare("second", "l1");
  ASSERT_TRUE(q.status.ok());
  EXPECT_NE(option(q.mounts[0], "upperdir="), option(p.mounts[0], "upperdir="));
}

// containerd unpacks layers in parallel: of eight Prepares of one key exactly one wins, and a
// parent removed while children are prepared over it is either removed with no child recorded or
// refused with every child recorded.
TEST_F(SnapshotterGrpc, ConcurrentCallsKeepTheRules) {
  std::atomic<int> won{0}, exists{0};
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&] {
        grpc::StatusCode code = prepare("same").status.error_code();
        if (code == grpc::StatusCode::OK) won++;
        if (code == grpc::StatusCode::ALREADY_EXISTS) exists++;
      });
    }
  }
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(exists.load(), 7);

  layer("parent", "", "f");
  std::atomic<int> children{0};
  grpc::Status removed;
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 6; ++i) {
      threads.emplace_back([&, i] {
        if (prepare("child" + std::to_string(i), "parent").status.ok()) children++;
      });
    }
    threads.emplace_back([&] { removed = remove("parent"); });
  }
  auto all = list();
  size_t recorded = 0;
  for (const auto& [name, info] : all) recorded += info.parent() == "parent" ? 1 : 0;
  EXPECT_EQ(recorded, static_cast<size_t>(children.load()));
  if (removed.ok()) {
    EXPECT_EQ(children.load(), 0);
  } else {
    EXPECT_EQ(removed.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_GT(children.load(), 0);
    EXPECT_EQ(all.count("parent"), 1U);
  }
}

TEST(SnapshotterSocket, AStaleSocketIsReplacedAndANonSocketRefused) {
  test::TempDir dir;
  auto store = manager::ManagerStore::open(dir / "ferry.db");
  ASSERT_TRUE(store.ok());
  auto s = Snapshotter::open(**store, dir / "snapshots");
  ASSERT_TRUE(s.ok());

  // A socket file nobody listens on (a crashed predecessor's).
  const std::string stale = dir / "stale.sock";
  {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, stale.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  auto replaced = GrpcServer::start(stale, *s);
  ASSERT_TRUE(replaced.ok()) << replaced.error().message;
  // ...while a live one is not taken over.
  auto second = GrpcServer::start(stale, *s);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, EADDRINUSE);

  const std::string file = dir / "file";
  std::ofstream(file) << "keep me";
  auto refused = GrpcServer::start(file, *s);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message, HasSubstr(file));
  std::ifstream in(file);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "keep me");
}

TEST(SnapshotterErrors, ErrnoCodesMapAsContainerdExpects) {
  EXPECT_EQ(to_grpc(Error{ENOENT, "x"}).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(to_grpc(Error{EEXIST, "x"}).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(to_grpc(Error{EINVAL, "x"}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(to_grpc(Error{EPERM, "x"}).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(to_grpc(Error{ENOTEMPTY, "x"}).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(to_grpc(Error{EIO, "disk"}).error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(to_grpc(Error{EIO, "disk"}).error_message(), "disk");
}

}  // namespace
}  // namespace ferry::snapshotter
