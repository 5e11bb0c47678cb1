// ImageFs through FuseServer, as the kernel drives it: request bytes in, reply bytes out
// (testkit::CapturingWriter), the image in memory (testkit::MemorySource over a mkfs.erofs
// image). Lookup counts keep a detached image until the kernel forgets it; readdir cookies
// continue in a successor's server after restore(); every error path answers its errno.
#include "imagefs/image_fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fuse/server/fuse_server.h"
#include "kit/capturing_writer.h"
#include "kit/fuse_request.h"
#include "kit/memory_source.h"
#include "support/test_support.h"

namespace ferry::imagefs {
namespace {

using testkit::CapturedReply;

constexpr int kManyFiles = 300;

// One mkfs.erofs image of a small tree, read into memory once for the whole suite.
struct TestImage {
  std::vector<std::byte> bytes;
  std::string a_content = "alpha, the first file\n";
  std::string big_content;
};

const TestImage& test_image() {
  static const TestImage image = [] {
    TestImage t;
    test::TempDir dir;
    const std::string src = dir / "src";
    std::filesystem::create_directories(src + "/d");
    std::filesystem::create_directories(src + "/many");
    std::ofstream(src + "/d/a") << t.a_content;
    t.big_content.resize(100000);
    for (size_t i = 0; i < t.big_content.size(); ++i) t.big_content[i] = static_cast<char>('a' + (i * 7) % 26);
    std::ofstream(src + "/d/big", std::ios::binary) << t.big_content;
    std::filesystem::create_symlink("d/a", src + "/link");
    for (int i = 0; i < kManyFiles; ++i) std::ofstream(src + "/many/file-with-a-long-name-" + std::to_string(i));
    std::string out;
    const std::string img = dir / "image.erofs";
    if (test::run_shell("mkfs.erofs --quiet '" + img + "' '" + src + "'", &out) != 0) {
      ADD_FAILURE() << "mkfs.erofs: " << out;
      return t;
    }
    std::string raw = test::read_file(img);
    t.bytes.resize(raw.size());
    std::memcpy(t.bytes.data(), raw.data(), raw.size());
    return t;
  }();
  return image;
}

std::shared_ptr<testkit::MemorySource> memory_source(bool viewable = true) {
  return std::make_shared<testkit::MemorySource>(test_image().bytes, "memory image", viewable);
}

std::shared_ptr<const erofs::ErofsImage> open_memory(std::shared_ptr<const ByteSource> source) {
  auto image = erofs::ErofsImage::open(std::move(source), [](const erofs::DeviceSlot&) {
    return Result<std::shared_ptr<const ByteSource>>(Error{ENOENT, "no devices"});
  });
  EXPECT_TRUE(image.ok()) << image.error().message;
  return image.ok() ? *image : nullptr;
}

AttachedImage attached(uint32_t slot, std::string name, std::shared_ptr<const ByteSource> source = memory_source()) {
  AttachedImage a;
  a.slot = slot;
  a.name = std::move(name);
  a.source = "memory";
  a.image = open_memory(std::move(source));
  return a;
}

// One ImageFs behind one FuseServer, spoken to in request bytes.
class Served {
 public:
  explicit Served(uint64_t kernel_flags = FUSE_INIT_EXT | FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS |
                                          FUSE_NO_OPEN_SUPPORT | FUSE_NO_OPENDIR_SUPPORT)
      : kernel_flags_(kernel_flags), server_(fs, fuse::ServerOptions{}), scratch_(server_.reply_buffer_size()) {}

  void init() {
    fuse_init_in in{};
    in.major = 7;
    in.minor = 40;
    in.max_readahead = 131072;
    in.flags = static_cast<uint32_t>(kernel_flags_);
    in.flags2 = static_cast<uint32_t>(kernel_flags_ >> 32U);
    EXPECT_EQ(call(FUSE_INIT, 0, &in, sizeof in).header.error, 0);
  }
  void restore(const fuse::FuseInitParams& params) { server_.restore(params); }
  [[nodiscard]] fuse::FuseInitParams params() const { return *server_.init_params(); }

  CapturedReply call(uint32_t opcode, uint64_t nodeid, const void* args, size_t len) {
    return send(testkit::fuse_request(opcode, nodeid, ++unique_, args, len));
  }
  CapturedReply send(const std::vector<std::byte>& req) {
    size_t before = writer_.replies.size();
    server_.handle(req, scratch_, writer_, worker);
    EXPECT_EQ(writer_.replies.size(), before + 1) << "one reply per request";
    if (writer_.replies.size() != before + 1) return {};
    EXPECT_TRUE(writer_.replies.back().framed);
    return writer_.replies.back();
  }
  // For requests the kernel expects no reply to (FORGET).
  void send_unanswered(const std::vector<std::byte>& req) {
    size_t before = writer_.replies.size();
    server_.handle(req, scratch_, writer_, worker);
    EXPECT_EQ(writer_.replies.size(), before) << "FORGET has no reply";
  }

  // Returns the entry; error in `err` (0 on success).
  fuse_entry_out lookup(uint64_t parent, std::string_view name, int* err = nullptr) {
    auto r = send(testkit::fuse_request_named(FUSE_LOOKUP, parent, ++unique_, name));
    if (err != nullptr) *err = -r.header.error;
    return r.as<fuse_entry_out>();
  }
  void forget(uint64_t nodeid, uint64_t n) {
    fuse_forget_in in{n};
    send_unanswered(testkit::fuse_request(FUSE_FORGET, nodeid, ++unique_, &in, sizeof in));
  }
  int getattr_error(uint64_t nodeid) { return -call(FUSE_GETATTR, nodeid, nullptr, 0).header.error; }
  CapturedReply read(uint64_t nodeid, uint64_t offset, uint32_t size) {
    fuse_read_in in{};
    in.offset = offset;
    in.size = size;
    return call(FUSE_READ, nodeid, &in, sizeof in);
  }
  // One READDIR(PLUS) reply decoded: (name, next offset, node id for plus).
  struct Dirent {
    std::string name;
    uint64_t off = 0;
    uint64_t nodeid = 0;
  };
  std::vector<Dirent> readdir(uint64_t nodeid, uint64_t offset, uint32_t size, bool plus, int* err = nullptr) {
    fuse_read_in in{};
    in.offset = offset;
    in.size = size;
    auto r = call(plus ? FUSE_READDIRPLUS : FUSE_READDIR, nodeid, &in, sizeof in);
    if (err != nullptr) *err = -r.header.error;
    std::vector<Dirent> out;
    size_t pos = 0;
    while (pos < r.payload.size()) {
      Dirent d;
      fuse_dirent de{};
      size_t name_at = pos;
      if (plus) {
        fuse_direntplus dp{};
        std::memcpy(&dp, r.payload.data() + pos, sizeof dp);
        de = dp.dirent;
        d.nodeid = dp.entry_out.nodeid;
        name_at += FUSE_NAME_OFFSET_DIRENTPLUS;
        pos += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + de.namelen);
      } else {
        std::memcpy(&de, r.payload.data() + pos, FUSE_NAME_OFFSET);
        name_at += FUSE_NAME_OFFSET;
        pos += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + de.namelen);
      }
      d.name.assign(reinterpret_cast<const char*>(r.payload.data() + name_at), de.namelen);  // NOLINT
      d.off = de.off;
      out.push_back(std::move(d));
    }
    return out;
  }

  ImageFs fs;
  unsigned worker = 0;

 private:
  uint64_t kernel_flags_;
  fuse::FuseServer server_;
  std::vector<std::byte> scratch_;
  testkit::CapturingWriter writer_;
  uint64_t unique_ = 100;
};

std::string text(const CapturedReply& r) {
  return {reinterpret_cast<const char*>(r.payload.data()), r.payload.size()};  // NOLINT: bytes as chars
}

// ---- a dedicated daemon's root image --------------------------------------------------------

class DedicatedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(s_.fs.set_root(attached(1, "")).ok());
    s_.init();
  }
  Served s_;
};

TEST_F(DedicatedTest, LookupGetattrReadAndReadlinkServeTheImage) {
  int err = 0;
  auto d = s_.lookup(FUSE_ROOT_ID, "d", &err);
  ASSERT_EQ(err, 0);
  EXPECT_EQ(d.nodeid >> kNidBits, 1U) << "slot 1";
  EXPECT_TRUE(S_ISDIR(d.attr.mode));
  auto a = s_.lookup(d.nodeid, "a", &err);
  ASSERT_EQ(err, 0);
  EXPECT_EQ(a.attr.size, test_image().a_content.size());
  EXPECT_EQ(a.entry_valid, 86400U) << "image entries are cached for a day";
  EXPECT_EQ(text(s_.read(a.nodeid, 0, 4096)), test_image().a_content);
  auto big = s_.lookup(d.nodeid, "big", &err);
  ASSERT_EQ(err, 0);
  EXPECT_EQ(text(s_.read(big.nodeid, 50000, 10000)), test_image().big_content.substr(50000, 10000));
  EXPECT_EQ(s_.read(big.nodeid, 200000, 4096).payload.size(), 0U) << "past the end: 0 bytes";
  auto link = s_.lookup(FUSE_ROOT_ID, "link", &err);
  ASSERT_EQ(err, 0);
  EXPECT_EQ(text(s_.call(FUSE_READLINK, link.nodeid, nullptr, 0)), "d/a");
  auto attr = s_.call(FUSE_GETATTR, FUSE_ROOT_ID, nullptr, 0).as<fuse_attr_out>();
  EXPECT_TRUE(S_ISDIR(attr.attr.mode));
}

TEST_F(DedicatedTest, EveryErrorPathAnswersItsErrno) {
  int err = 0;
  auto miss = s_.lookup(FUSE_ROOT_ID, "absent", &err);
  EXPECT_EQ(err, 0) << "a missing name is a cached negative entry";
  EXPECT_EQ(miss.nodeid, 0U);
  EXPECT_EQ(miss.entry_valid, 86400U);
  auto d = s_.lookup(FUSE_ROOT_ID, "d", &err);
  auto a = s_.lookup(d.nodeid, "a", &err);
  // A node id of a slot nothing was attached in, and one this encoding never makes.
  EXPECT_EQ(s_.getattr_error((uint64_t{7} << kNidBits) | 5), ESTALE);
  EXPECT_EQ(s_.getattr_error(5), ESTALE) << "slot 0";
  EXPECT_EQ(-s_.read(uint64_t{9} << kNidBits, 0, 10).header.error, ESTALE);
  // A nid that is no inode: the image reports corruption, the kernel gets EIO.
  EXPECT_EQ(s_.getattr_error((uint64_t{1} << kNidBits) | 0xFFFFFFFFFULL), EIO);
  EXPECT_EQ(-s_.call(FUSE_READLINK, a.nodeid, nullptr, 0).header.error, EINVAL) << "not a symlink";
  uint32_t wr = O_WRONLY;
  EXPECT_EQ(-s_.call(FUSE_OPEN, a.nodeid, &wr, sizeof wr).header.error, EROFS);
  uint32_t rd = O_RDONLY;
  EXPECT_EQ(-s_.call(FUSE_OPEN, a.nodeid, &rd, sizeof rd).header.error, ENOSYS)
      << "the kernel offered FUSE_NO_OPEN_SUPPORT: no OPEN needed";
  EXPECT_EQ(-s_.call(FUSE_OPENDIR, d.nodeid, &rd, sizeof rd).header.error, ENOSYS);
  fuse_access_in acc{};
  acc.mask = W_OK;
  EXPECT_EQ(-s_.call(FUSE_ACCESS, a.nodeid, &acc, sizeof acc).header.error, EROFS);
  acc.mask = R_OK;
  EXPECT_EQ(-s_.call(FUSE_ACCESS, a.nodeid, &acc, sizeof acc).header.error, 0);
  fuse_getxattr_in gx{};
  gx.size = 64;
  EXPECT_EQ(-s_.send(testkit::fuse_request_named(FUSE_GETXATTR, a.nodeid, 1, "user.none", &gx)).header.error,
            ENODATA);
  fuse_lseek_in ls{};
  ls.whence = SEEK_END;
  EXPECT_EQ(-s_.call(FUSE_LSEEK, a.nodeid, &ls, sizeof ls).header.error, EINVAL) << "only SEEK_DATA/HOLE";
  ls.whence = SEEK_DATA;
  ls.offset = 1 << 20;
  EXPECT_EQ(-s_.call(FUSE_LSEEK, a.nodeid, &ls, sizeof ls).header.error, ENXIO) << "past the end";
  EXPECT_EQ(-s_.call(FUSE_MKDIR, FUSE_ROOT_ID, nullptr, 0).header.error, EROFS);
  // The table refuses what cannot be.
  EXPECT_EQ(s_.fs.set_root(attached(2, "")).error().code, EEXIST);
  EXPECT_EQ(s_.fs.attach(attached(2, "child")).error().code, EINVAL) << "a root image is set";
}

TEST(ImageFsSource, AFailingSourceAnswersEioAndKeepsServing) {
  auto source = memory_source(/*viewable=*/false);
  Served s;
  ASSERT_TRUE(s.fs.set_root(attached(1, "", source)).ok());
  s.init();
  int err = 0;
  auto d = s.lookup(FUSE_ROOT_ID, "d", &err);
  ASSERT_EQ(err, 0);
  auto big = s.lookup(d.nodeid, "big", &err);
  ASSERT_EQ(err, 0);
  source->fail_range(0, source->size());  // the disk under the image fails
  EXPECT_EQ(-s.read(big.nodeid, 0, 4096).header.error, EIO);
  EXPECT_EQ(s.getattr_error(d.nodeid), EIO);
  s.lookup(d.nodeid, "a", &err);
  EXPECT_EQ(err, EIO);
  source->fail_range(0, 0);  // and recovers: nothing was remembered of the failure
  EXPECT_EQ(text(s.read(big.nodeid, 0, 100)), test_image().big_content.substr(0, 100));
}

TEST(ImageFsNoOpen, WithoutTheKernelsNoOpenSupportOpenKeepsTheCache) {
  Served s(FUSE_INIT_EXT | FUSE_MAX_PAGES);
  ASSERT_TRUE(s.fs.set_root(attached(1, "")).ok());
  s.init();
  uint32_t rd = O_RDONLY;
  auto open = s.call(FUSE_OPEN, FUSE_ROOT_ID, &rd, sizeof rd);
  EXPECT_EQ(open.header.error, 0);
  EXPECT_NE(open.as<fuse_open_out>().open_flags & FOPEN_KEEP_CACHE, 0U);
  auto dir = s.call(FUSE_OPENDIR, FUSE_ROOT_ID, &rd, sizeof rd);
  EXPECT_NE(dir.as<fuse_open_out>().open_flags & FOPEN_CACHE_DIR, 0U);
}

// ---- readdir cookies ------------------------------------------------------------------------

std::set<std::string> many_names() {
  std::set<std::string> names = {".", ".."};
  for (int i = 0; i < kManyFiles; ++i) names.insert("file-with-a-long-name-" + std::to_string(i));
  return names;
}

TEST(ImageFsReaddir, CookiesContinueInASuccessorAfterRestore) {
  for (bool plus : {false, true}) {
    SCOPED_TRACE(plus ? "READDIRPLUS" : "READDIR");
    Served first;
    ASSERT_TRUE(first.fs.set_root(attached(1, "")).ok());
    first.init();
    int err = 0;
    auto many = first.lookup(FUSE_ROOT_ID, "many", &err);
    ASSERT_EQ(err, 0);
    std::multiset<std::string> seen;
    uint64_t off = 0;
    for (int i = 0; i < 2; ++i) {  // two small batches from the first process
      auto batch = first.readdir(many.nodeid, off, 1024, plus, &err);
      ASSERT_EQ(err, 0);
      ASSERT_FALSE(batch.empty());
      for (const auto& e : batch) seen.insert(e.name);
      off = batch.back().off;
    }
    // A successor: the same image in the same slot, the parameters restored, no FUSE_INIT.
    Served second;
    ASSERT_TRUE(second.fs.set_root(attached(1, "")).ok());
    second.restore(first.params());
    while (true) {
      auto batch = second.readdir(many.nodeid, off, 1024, plus, &err);
      ASSERT_EQ(err, 0);
      if (batch.empty()) break;
      for (const auto& e : batch) {
        seen.insert(e.name);
        if (plus && e.name != "." && e.name != "..") {
          EXPECT_EQ(e.nodeid >> kNidBits, 1U);
        }
      }
      off = batch.back().off;
    }
    std::set<std::string> unique(seen.begin(), seen.end());
    EXPECT_EQ(unique.size(), seen.size()) << "no entry twice";
    EXPECT_EQ(unique, many_names()) << "every entry once";
  }
}

// ---- a shared daemon: attach, detach, lookup counts ----------------------------------------

class SharedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(s_.fs.attach(attached(1, "one")).ok());
    ASSERT_TRUE(s_.fs.attach(attached(2, "two")).ok());
    s_.init();
  }
  Served s_;
};

TEST_F(SharedTest, ThePseudoRootListsAndResolvesTheImages) {
  int err = 0;
  auto names = s_.readdir(FUSE_ROOT_ID, 0, 4096, false, &err);
  ASSERT_EQ(err, 0);
  std::vector<std::string> got;
  for (const auto& e : names) got.push_back(e.name);
  EXPECT_EQ(got, (std::vector<std::string>{".", "..", "one", "two"}));
  // Continued from a cookie in the middle.
  auto rest = s_.readdir(FUSE_ROOT_ID, names[2].off, 4096, false, &err);
  ASSERT_EQ(rest.size(), 1U);
  EXPECT_EQ(rest[0].name, "two");
  auto one = s_.lookup(FUSE_ROOT_ID, "one", &err);
  ASSERT_EQ(err, 0);
  EXPECT_EQ(one.nodeid >> kNidBits, 1U);
  EXPECT_EQ(one.entry_valid, 1U) << "the root's children come and go: short timeout";
  s_.lookup(FUSE_ROOT_ID, "three", &err);
  EXPECT_EQ(err, ENOENT) << "no negative entry for the root's children";
  auto root = s_.call(FUSE_GETATTR, FUSE_ROOT_ID, nullptr, 0).as<fuse_attr_out>();
  EXPECT_EQ(root.attr.nlink, 4U);
  EXPECT_EQ(-s_.read(FUSE_ROOT_ID, 0, 10).header.error, EISDIR);
  EXPECT_EQ(-s_.call(FUSE_READLINK, FUSE_ROOT_ID, nullptr, 0).header.error, EINVAL);
  fuse_getxattr_in gx{};
  EXPECT_EQ(-s_.send(testkit::fuse_request_named(FUSE_GETXATTR, FUSE_ROOT_ID, 1, "user.k", &gx)).header.error,
            ENODATA);
  fuse_lseek_in ls{};
  ls.whence = SEEK_DATA;
  EXPECT_EQ(-s_.call(FUSE_LSEEK, FUSE_ROOT_ID, &ls, sizeof ls).header.error, ENXIO);
  EXPECT_EQ(s_.fs.attach(attached(3, "one")).error().code, EEXIST) << "name taken";
  EXPECT_EQ(s_.fs.attach(attached(2, "three")).error().code, EEXIST) << "slot taken";
  EXPECT_EQ(s_.fs.attach(attached(3, "a/b")).error().code, EINVAL);
  EXPECT_EQ(s_.fs.attach(attached(3, "..")).error().code, EINVAL);
  EXPECT_EQ(s_.fs.detach("three").error().code, ENOENT);
  EXPECT_EQ(s_.fs.replace(attached(3, "three")).error().code, ENOENT);
  EXPECT_EQ(s_.fs.replace(attached(2, "one")).error().code, EINVAL) << "slot taken";
}

TEST_F(SharedTest, ADetachedImageServesWhatTheKernelHoldsUntilItIsForgotten) {
  int err = 0;
  auto one = s_.lookup(FUSE_ROOT_ID, "one", &err);  // count 1
  auto d = s_.lookup(one.nodeid, "d", &err);         // count 2
  auto a = s_.lookup(d.nodeid, "a", &err);           // count 3
  ASSERT_EQ(err, 0);
  // READDIRPLUS entries count too: the "d" directory holds "a" and "big".
  auto plus = s_.readdir(d.nodeid, 0, 4096, true, &err);
  ASSERT_EQ(err, 0);
  uint64_t counted = 0;
  for (const auto& e : plus) counted += e.nodeid != 0 ? 1 : 0;
  EXPECT_EQ(counted, 2U) << "'.' and '..' carry no node id";  // count 5
  ASSERT_TRUE(s_.fs.detach("one").ok());
  s_.lookup(FUSE_ROOT_ID, "one", &err);
  EXPECT_EQ(err, ENOENT) << "gone for new lookups";
  EXPECT_EQ(s_.fs.images(false).size(), 1U);
  EXPECT_EQ(s_.fs.images(true).size(), 2U) << "still referenced: draining";
  EXPECT_EQ(text(s_.read(a.nodeid, 0, 4096)), test_image().a_content) << "an open file keeps reading";
  s_.forget(a.nodeid, 2);
  s_.forget(d.nodeid, 1);
  s_.forget(one.nodeid, 1);
  EXPECT_EQ(s_.getattr_error(a.nodeid), 0) << "one reference left";
  s_.forget(d.nodeid, 1);  // the last
  EXPECT_EQ(s_.getattr_error(a.nodeid), ESTALE) << "forgotten: closed";
  EXPECT_EQ(s_.fs.images(true).size(), 1U);
  // "two" never noticed.
  auto two = s_.lookup(FUSE_ROOT_ID, "two", &err);
  EXPECT_EQ(err, 0);
  EXPECT_EQ(two.nodeid >> kNidBits, 2U);
}

TEST_F(SharedTest, AnUnreferencedImageIsDroppedAtOnceAndReplaceSwapsAtomically) {
  ASSERT_TRUE(s_.fs.detach("two").ok());
  EXPECT_EQ(s_.fs.images(true).size(), 1U) << "the kernel held nothing of it";
  int err = 0;
  auto old_root = s_.lookup(FUSE_ROOT_ID, "one", &err);
  ASSERT_TRUE(s_.fs.replace(attached(5, "one")).ok());
  auto new_root = s_.lookup(FUSE_ROOT_ID, "one", &err);
  ASSERT_EQ(err, 0);
  EXPECT_EQ(new_root.nodeid >> kNidBits, 5U);
  EXPECT_EQ(s_.getattr_error(old_root.nodeid), 0) << "the old image drains";
  s_.forget(old_root.nodeid, 1);
  EXPECT_EQ(s_.getattr_error(old_root.nodeid), ESTALE);
}

// Readers on every worker index while images come and go: no request sees a freed image.
TEST(ImageFsConcurrency, WorkersReadWhileImagesAreAttachedAndDetached) {
  ImageFs fs(ImageFsOptions{}, 4);
  ASSERT_TRUE(fs.attach(attached(1, "stable")).ok());
  fs.init(fuse::FuseInitParams{});
  auto image = attached(100, "x");  // opened once, attached many times
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> bad{0};
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      fuse::RequestContext ctx;
      ctx.worker = w;
      std::vector<std::byte> buf(64);
      while (!stop.load()) {
        for (const char* name : {"stable", "x"}) {
          auto root = fs.lookup(ctx, 1, name);
          if (!root.ok()) continue;  // "x" is detached now
          auto d = fs.lookup(ctx, root->nodeid, "d");
          auto a = d.ok() ? fs.lookup(ctx, d->nodeid, "a") : d;
          if (!a.ok()) {
            if (std::string(name) == "stable" || a.error().code != ESTALE) bad.fetch_add(1);
            continue;
          }
          auto n = fs.read(ctx, a->nodeid, 0, 0, buf);
          if (n.ok() && std::memcmp(buf.data(), test_image().a_content.data(), 5) == 0) reads.fetch_add(1);
          if (!n.ok() && (std::string(name) == "stable" || n.error().code != ESTALE)) bad.fetch_add(1);
          fs.forget(ctx, a->nodeid, 1);
          fs.forget(ctx, d->nodeid, 1);
          fs.forget(ctx, root->nodeid, 1);
        }
      }
    });
  }
  // 300 attach/detach rounds at least, and on until the workers have read a while (on a loaded
  // host they may not have been scheduled yet), within a deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (uint32_t slot = 100;
       slot < 400 || (reads.load() < 1000 && std::chrono::steady_clock::now() < deadline && slot < (1U << 22));
       ++slot) {
    AttachedImage next(image);
    next.slot = slot;
    ASSERT_TRUE(fs.attach(std::move(next)).ok());
    std::this_thread::yield();
    ASSERT_TRUE(fs.detach("x").ok());
  }
  stop.store(true);
  for (auto& t : workers) t.join();
  EXPECT_GT(reads.load(), 0U);
  EXPECT_EQ(bad.load(), 0U);
  EXPECT_EQ(fs.images(true).size(), 1U) << "every detached image was dropped once forgotten";
}

}  // namespace
}  // namespace ferry::imagefs
