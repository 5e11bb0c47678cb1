// ErofsImage against real mkfs.erofs images: each layout mkfs.erofs 1.5 can write is read back
// and compared with the source tree as lstat/readlink/llistxattr/read see it; patched images
// cover what mkfs cannot write (holes, mapped devices, other block sizes, unsupported features),
// and truncation/corruption sweeps check that bad images give errors, never crashes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

#include "common/crc32c.h"
#include "erofs/erofs_image.h"
#include "storage/local_file.h"
#include "kit/alloc_counter.h"
#include "kit/memory_source.h"
#include "support/test_support.h"

namespace ferry::erofs {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using testkit::random_bytes;

// ---- bytes and files -------------------------------------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

template <typename T>
void put_le(std::string& buf, uint64_t offset, T value) {
  std::memcpy(buf.data() + offset, &value, sizeof value);
}

template <typename T>
T get_le(const std::string& buf, uint64_t offset) {
  T value;
  std::memcpy(&value, buf.data() + offset, sizeof value);
  return value;
}

// Recomputes the superblock checksum the way the kernel verifies it.
void fix_checksum(std::string& image) {
  const uint64_t block_size = uint64_t{1} << static_cast<uint8_t>(image[1024 + 12]);
  const uint64_t length = block_size > 1024 ? block_size - 1024 : block_size;
  put_le<uint32_t>(image, 1028, 0);
  put_le<uint32_t>(image, 1028, crc32c_update(~0U, std::as_bytes(std::span(image.data() + 1024, length))));
}

constexpr uint64_t kSb = 1024;  // superblock offset, for patching fields by their on-disk offset
constexpr uint32_t kNullAddrForTests = 0xFFFFFFFF;

std::shared_ptr<const ByteSource> memory(std::string bytes, bool mapped, std::string name = "memory image") {
  return std::make_shared<testkit::MemorySource>(std::string_view(bytes), std::move(name), mapped);
}

template <typename T>
T must(Result<T> result, const std::string& what = "") {
  if (!result.ok()) throw std::runtime_error(what + ": " + result.error().message);
  return std::move(result).value();
}

// ---- images ----------------------------------------------------------------------------------

void mkfs(const std::string& options, const std::string& image, const std::string& source,
          const std::string& blob = "") {
  std::string cmd = "mkfs.erofs --quiet " + options;
  if (!blob.empty()) cmd += " --blobdev='" + blob + "'";
  cmd += " '" + image + "' '" + source + "'";
  std::string out;
  if (test::run_shell(cmd, &out) != 0) throw std::runtime_error(cmd + " failed: " + out);
}

ErofsImage::DeviceResolver resolver_for(const std::shared_ptr<const ByteSource>& blob) {
  return [blob](const DeviceSlot&) -> Result<std::shared_ptr<const ByteSource>> {
    if (blob == nullptr) return Error{ENODEV, "this test has no blob"};
    return blob;
  };
}

std::shared_ptr<const ByteSource> local(const std::string& path, bool map) {
  return must(storage::LocalFile::open(path, map), "opening " + path);
}

std::shared_ptr<const ErofsImage> open_image(const std::string& image, const std::string& blob = "",
                                             bool map = true) {
  return must(ErofsImage::open(local(image, map), resolver_for(blob.empty() ? nullptr : local(blob, map))),
              "opening image " + image);
}

std::shared_ptr<const ErofsImage> open_bytes(std::string image, std::string blob = "", bool map = true) {
  auto blob_source = blob.empty() ? nullptr : memory(std::move(blob), map, "memory blob");
  return must(ErofsImage::open(memory(std::move(image), map), resolver_for(blob_source)),
              "opening image bytes");
}

Inode root_of(const ErofsImage& img) {
  return must(img.inode(img.superblock().root_nid), "root inode");
}

Inode resolve(const ErofsImage& img, const std::string& path) {
  Inode current = root_of(img);
  for (const auto& part : fs::path(path)) {
    if (part == "/" || part.empty()) continue;
    current = must(img.inode(must(img.lookup(current, part.string()), "lookup " + part.string())), path);
  }
  return current;
}

std::string read_all(const ErofsImage& img, const Inode& inode, size_t piece = size_t{128} * 1024) {
  std::string out(static_cast<size_t>(inode.size), '\0');
  uint64_t offset = 0;
  while (offset < inode.size) {
    const size_t want = std::min<uint64_t>(piece, inode.size - offset);
    auto n =
        must(img.read(inode, offset, std::as_writable_bytes(std::span(out.data() + offset, want))), "read");
    if (n != want) throw std::runtime_error("short read at " + std::to_string(offset));
    offset += n;
  }
  return out;
}

struct Entry {
  std::string name;
  uint64_t nid;
  FileType type;
  uint64_t next_cookie;
};

std::vector<Entry> list_dir(const ErofsImage& img, const Inode& dir, uint64_t cookie = 0,
                            size_t limit = SIZE_MAX) {
  std::vector<Entry> out;
  Status st = img.read_dir(dir, cookie, [&](const DirEntry& e) {
    out.push_back({std::string(e.name), e.nid, e.type, e.next_cookie});
    return out.size() < limit;
  });
  if (!st.ok()) throw std::runtime_error("read_dir: " + st.error().message);
  return out;
}

std::map<std::string, std::string> image_xattrs(const ErofsImage& img, const Inode& inode) {
  std::map<std::string, std::string> out;
  for (const auto& name : must(img.list_xattrs(inode), "list_xattrs")) {
    out[name] = must(img.get_xattr(inode, name), "get_xattr " + name);
  }
  return out;
}

std::map<std::string, std::string> source_xattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  std::string names(65536, '\0');
  ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) throw std::runtime_error("llistxattr " + path);
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    std::string value(65536, '\0');
    ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (v < 0) throw std::runtime_error(std::string("lgetxattr ").append(path).append(": ").append(name));
    value.resize(static_cast<size_t>(v));
    out[name] = value;
  }
  return out;
}

// ---- the source tree ---------------------------------------------------------------------------

void make_file(const std::string& path, std::string_view content) {
  write_file(path, content);
}

void set_mtime(const std::string& path, time_t sec, long nsec) {
  timespec times[2] = {{sec, nsec}, {sec, nsec}};
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    throw std::runtime_error("utimensat " + path);
  }
}

void set_xattr(const std::string& path, const std::string& name, const std::string& value) {
  if (::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
    throw std::runtime_error("lsetxattr " + path + " " + name + ": " + std::strerror(errno));
  }
}

void make_socket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::close(fd);
  if (rc != 0) throw std::runtime_error("bind " + path);
}

// A POSIX ACL in the kernel's xattr form: version 2, then (tag, perm, id) entries.
std::string posix_acl(std::initializer_list<std::tuple<uint16_t, uint16_t, uint32_t>> entries) {
  std::string out(4, '\0');
  put_le<uint32_t>(out, 0, 2);
  for (const auto& [tag, perm, id] : entries) {
    std::string e(8, '\0');
    put_le<uint16_t>(e, 0, tag);
    put_le<uint16_t>(e, 2, perm);
    put_le<uint32_t>(e, 4, id);
    out += e;
  }
  return out;
}

constexpr uint32_t kAclUndefinedId = 0xFFFFFFFF;

// Every kind of node mkfs.erofs copies, at the sizes where layouts change.
void build_tree(const std::string& root, bool with_big_file) {
  fs::create_directories(root + "/files");
  for (size_t size : {0, 1, 100, 4095, 4096, 4097, 8191, 8192, 12289, 65535, 65536, 65537, 131072, 200001}) {
    make_file(root + "/files/size_" + std::to_string(size), random_bytes(size, static_cast<uint32_t>(size)));
  }
  if (with_big_file) make_file(root + "/files/big", random_bytes(5 * 1024 * 1024 + 17, 5));
  {
    std::string sparse(1024 * 1024 + 123, '\0');
    std::memcpy(sparse.data() + 300000, "data in the middle", 18);
    make_file(root + "/files/sparse", sparse);
  }
  make_file(root + "/files/text", "hello, erofs\n");

  // 254 bytes is the longest name mkfs.erofs 1.5 accepts (it fails on 255, the format's limit).
  fs::create_directories(root + "/names");
  for (const std::string& name :
       {std::string(254, 'a'), std::string("h\xC3\xA9llo w\xC3\xB6rld"),
        std::string("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"), std::string("\xFF\xFE raw bytes"),
        std::string(" space"), std::string(".hidden"), std::string("-dash"), std::string("UPPER"),
        std::string("lower"), std::string("z")}) {
    make_file(std::string(root).append("/names/").append(name), name);
  }

  fs::create_directories(root + "/links");
  fs::create_symlink("../files/text", root + "/links/relative");
  fs::create_symlink("/etc/passwd", root + "/links/absolute");
  fs::create_symlink(std::string(4095, 'x'), root + "/links/longest");
  fs::create_symlink(std::string(300, 'y') + "/z", root + "/links/long");
  fs::create_symlink("nowhere", root + "/links/dangling");

  fs::create_directories(root + "/hard/sub");
  make_file(root + "/hard/one", "linked content");
  fs::create_hard_link(root + "/hard/one", root + "/hard/two");
  fs::create_hard_link(root + "/hard/one", root + "/hard/sub/three");

  fs::create_directories(root + "/special");
  if (::mknod((root + "/special/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0 ||
      ::mknod((root + "/special/big_minor").c_str(), S_IFCHR | 0600, makedev(511, 70000)) != 0 ||
      ::mknod((root + "/special/disk").c_str(), S_IFBLK | 0660, makedev(8, 1)) != 0 ||
      ::mkfifo((root + "/special/fifo").c_str(), 0644) != 0) {
    throw std::runtime_error("mknod failed (tests run as root)");
  }
  make_socket(root + "/special/sock");

  fs::create_directories(root + "/xattrs/dir_with_xattr");
  for (int i = 0; i < 4; ++i) {
    const std::string path = root + "/xattrs/shared_" + std::to_string(i);
    make_file(path, "x");
    set_xattr(path, "user.common", "the same value on four files");
    set_xattr(path, "trusted.common", "also shared");
    set_xattr(path, "user.own", "value " + std::to_string(i));
  }
  make_file(root + "/xattrs/kinds", "k");
  set_xattr(root + "/xattrs/kinds", "user.u", "user value");
  set_xattr(root + "/xattrs/kinds", "trusted.t", "trusted value");
  set_xattr(root + "/xattrs/kinds", "security.s", "security value");
  set_xattr(root + "/xattrs/kinds", "user.empty", "");
  set_xattr(root + "/xattrs/kinds", "system.posix_acl_access",
            posix_acl({{0x01, 6, kAclUndefinedId},
                       {0x02, 4, 1000},
                       {0x04, 4, kAclUndefinedId},
                       {0x10, 4, kAclUndefinedId},
                       {0x20, 0, kAclUndefinedId}}));
  set_xattr(root + "/xattrs/dir_with_xattr", "user.on_dir", "dir value");
  set_xattr(root + "/xattrs/dir_with_xattr", "system.posix_acl_default",
            posix_acl({{0x01, 7, kAclUndefinedId}, {0x04, 5, kAclUndefinedId}, {0x20, 5, kAclUndefinedId}}));
  make_file(root + "/xattrs/big_area", "b");
  set_xattr(root + "/xattrs/big_area", "user.big", random_bytes(2500, 9));
  for (int i = 0; i < 12; ++i) {
    set_xattr(root + "/xattrs/big_area", "user.k" + std::to_string(i),
              std::string(37 + i, static_cast<char>('a' + i)));
  }
  set_xattr(root + "/links/relative", "trusted.on_symlink", "symlink xattr");

  fs::create_directories(root + "/modes/sticky");
  make_file(root + "/modes/setuid", "s");
  make_file(root + "/modes/private", "p");
  make_file(root + "/modes/none", "n");
  make_file(root + "/modes/owned", "o");
  ::chmod((root + "/modes/setuid").c_str(), 04755);
  ::chmod((root + "/modes/private").c_str(), 0600);
  ::chmod((root + "/modes/none").c_str(), 0);
  ::chmod((root + "/modes/sticky").c_str(), 01777);
  if (::lchown((root + "/modes/owned").c_str(), 1234, 5678) != 0) throw std::runtime_error("lchown");
  set_mtime(root + "/modes/owned", 1234567890, 123456789);
  set_mtime(root + "/modes/private", 0, 0);

  fs::create_directories(root + "/deep/a/b/c/d/e/f/g");
  make_file(root + "/deep/a/b/c/d/e/f/g/leaf", "leaf");
  fs::create_directories(root + "/empty");
}

// ---- comparing an image with its source tree ---------------------------------------------------

struct CompareOptions {
  std::optional<uint64_t> fixed_mtime;  // -T: every inode has this mtime and nsec 0
};

FileType type_of_stat(mode_t mode) {
  return file_type_of(static_cast<uint16_t>(mode));
}

void compare_node(const ErofsImage& img, const Inode& inode, const std::string& path, const struct stat& st,
                  const CompareOptions& options) {
  SCOPED_TRACE(path);
  EXPECT_EQ(inode.mode, st.st_mode);
  EXPECT_EQ(inode.uid, st.st_uid);
  EXPECT_EQ(inode.gid, st.st_gid);
  if (!S_ISDIR(st.st_mode)) {
    EXPECT_EQ(inode.nlink, st.st_nlink);
  }
  if (options.fixed_mtime) {
    EXPECT_EQ(inode.mtime, *options.fixed_mtime);
    EXPECT_EQ(inode.mtime_nsec, 0U);
  } else {
    EXPECT_EQ(inode.mtime, static_cast<uint64_t>(st.st_mtim.tv_sec));
    EXPECT_EQ(inode.mtime_nsec, static_cast<uint32_t>(st.st_mtim.tv_nsec));
  }
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    EXPECT_EQ(inode.rdev, st.st_rdev);
  } else {
    EXPECT_EQ(inode.rdev, 0U);
  }
  if (S_ISREG(st.st_mode)) {
    EXPECT_EQ(inode.size, static_cast<uint64_t>(st.st_size));
    EXPECT_TRUE(read_all(img, inode) == read_file(path)) << "content differs";
  }
  if (S_ISLNK(st.st_mode)) {
    EXPECT_EQ(inode.size, static_cast<uint64_t>(st.st_size));
    EXPECT_EQ(must(img.read_link(inode)), fs::read_symlink(path).string());
  }
  EXPECT_EQ(image_xattrs(img, inode), source_xattrs(path));
}

void compare_dir(const ErofsImage& img, const Inode& dir, uint64_t parent_nid, const std::string& path,
                 const CompareOptions& options, std::map<ino_t, uint64_t>& nid_of_source_inode) {
  SCOPED_TRACE(path);
  auto entries = list_dir(img, dir);
  std::set<std::string> image_names;
  for (const auto& e : entries) {
    if (e.name == ".") {
      EXPECT_EQ(e.nid, dir.nid);
      continue;
    }
    if (e.name == "..") {
      EXPECT_EQ(e.nid, parent_nid);
      continue;
    }
    image_names.insert(e.name);
    EXPECT_EQ(must(img.lookup(dir, e.name), "lookup " + e.name), e.nid) << e.name;
    const std::string child = path + "/" + e.name;
    struct stat st {};
    ASSERT_EQ(::lstat(child.c_str(), &st), 0) << child;
    Inode inode = must(img.inode(e.nid), child);
    EXPECT_EQ(inode.nid, e.nid);
    EXPECT_EQ(e.type, type_of_stat(st.st_mode)) << child;
    // Hard links share one inode, hence one nid.
    auto [it, inserted] = nid_of_source_inode.emplace(st.st_ino, e.nid);
    if (!inserted) {
      EXPECT_EQ(it->second, e.nid) << child << " is a hard link";
    }
    compare_node(img, inode, child, st, options);
    if (S_ISDIR(st.st_mode)) compare_dir(img, inode, dir.nid, child, options, nid_of_source_inode);
  }
  std::set<std::string> source_names;
  for (const auto& e : fs::directory_iterator(path)) source_names.insert(e.path().filename().string());
  EXPECT_EQ(image_names, source_names);
  EXPECT_EQ(entries.size(), source_names.size() + 2);
}

void compare_tree(const ErofsImage& img, const std::string& source, const CompareOptions& options = {}) {
  Inode root = root_of(img);
  struct stat st {};
  ASSERT_EQ(::lstat(source.c_str(), &st), 0);
  compare_node(img, root, source, st, options);
  std::map<ino_t, uint64_t> nids;
  compare_dir(img, root, root.nid, source, options, nids);
}

// ---- a bounded walk that records every answer, for truncation and corruption sweeps ------------

using Transcript = std::map<std::string, std::string>;

std::string outcome(const Error& e) {
  return "error " + std::to_string(e.code);
}

// Visits at most `budget` nodes; records "<path> <op>" -> result. Never asserts: damaged images
// are expected to fail, the caller decides what a failure means.
void walk(const ErofsImage& img, uint64_t nid, const std::string& path, int depth, size_t& budget,
          Transcript& out, size_t read_cap) {
  if (budget == 0 || depth > 12) return;
  --budget;
  auto inode = img.inode(nid);
  if (!inode.ok()) {
    out[path + " inode"] = outcome(inode.error());
    return;
  }
  const Inode& i = *inode;
  out[path + " inode"] = std::to_string(i.mode) + " " + std::to_string(i.size) + " " +
                         std::to_string(i.nlink) + " " + std::to_string(i.uid) + " " +
                         std::to_string(i.mtime) + " " + std::to_string(i.rdev);
  if (auto names = img.list_xattrs(i); names.ok()) {
    std::string all;
    for (const auto& n : *names) {
      auto v = img.get_xattr(i, n);
      all += n + "=" + (v.ok() ? *v : outcome(v.error())) + ";";
    }
    out[path + " xattrs"] = all;
  } else {
    out[path + " xattrs"] = outcome(names.error());
  }
  (void)img.get_xattr(i, "user.absent");
  if (S_ISLNK(i.mode)) {
    auto target = img.read_link(i);
    out[path + " link"] = target.ok() ? *target : outcome(target.error());
  }
  if (S_ISREG(i.mode)) {
    std::string buf(static_cast<size_t>(std::min<uint64_t>(i.size, read_cap)), '\0');
    auto n = img.read(i, 0, std::as_writable_bytes(std::span(buf)));
    out[path + " data"] =
        n.ok() ? std::to_string(std::hash<std::string>{}(buf.substr(0, *n))) : outcome(n.error());
    auto data = img.seek(i, 0, SEEK_DATA);
    auto hole = img.seek(i, 0, SEEK_HOLE);
    out[path + " seek"] = (data.ok() ? std::to_string(*data) : outcome(data.error())) + " " +
                          (hole.ok() ? std::to_string(*hole) : outcome(hole.error()));
  }
  if (S_ISDIR(i.mode)) {
    std::vector<std::pair<std::string, uint64_t>> children;
    Status st = img.read_dir(i, 0, [&](const DirEntry& e) {
      children.emplace_back(std::string(e.name), e.nid);
      return children.size() < 10000;
    });
    std::string listing;
    for (const auto& [name, child] : children) listing += name + ":" + std::to_string(child) + ";";
    out[path + " dir"] = listing + (st.ok() ? "" : outcome(st.error()));
    for (const auto& [name, child] : children) {
      auto found = img.lookup(i, name);
      std::string child_path = path;
      child_path.append("/").append(name);
      out[child_path + " lookup"] = found.ok() ? std::to_string(*found) : outcome(found.error());
      if (name != "." && name != "..") walk(img, child, child_path, depth + 1, budget, out, read_cap);
    }
  }
}

Transcript transcript(const ErofsImage& img, size_t budget = 400, size_t read_cap = 300000) {
  Transcript out;
  walk(img, img.superblock().root_nid, "", 0, budget, out, read_cap);
  return out;
}

// ---- mkfs layouts ----------------------------------------------------------------------------

struct Layout {
  const char* name;
  const char* options;
  bool blob;
  std::optional<uint64_t> fixed_mtime;
};

// Names the layout in ctest output instead of dumping its bytes; gtest looks for this name.
void PrintTo(const Layout& layout, std::ostream* os) {  // NOLINT(readability-identifier-naming)
  *os << layout.name;
}  // NOLINT: gtest's name

class ErofsLayoutTest : public ::testing::TestWithParam<Layout> {
 public:
  static void SetUpTestSuite() {
    suite_dir = std::make_unique<TempDir>();
    build_tree(*suite_dir / "src", true);
  }
  static void TearDownTestSuite() { suite_dir.reset(); }

 protected:
  static std::unique_ptr<TempDir> suite_dir;
};
std::unique_ptr<TempDir> ErofsLayoutTest::suite_dir;

TEST_P(ErofsLayoutTest, ReadsTheSourceTreeExactly) {
  const Layout& layout = GetParam();
  const std::string image = *suite_dir / (std::string(layout.name) + ".erofs");
  const std::string blob = layout.blob ? *suite_dir / (std::string(layout.name) + ".blob") : "";
  mkfs(layout.options, image, *suite_dir / "src", blob);
  auto img = open_image(image, blob);
  compare_tree(*img, *suite_dir / "src", {layout.fixed_mtime});
}

TEST_P(ErofsLayoutTest, UnmappedImageGivesTheSameAnswersAsMapped) {
  const Layout& layout = GetParam();
  const std::string image = *suite_dir / (std::string(layout.name) + "-2.erofs");
  const std::string blob = layout.blob ? *suite_dir / (std::string(layout.name) + "-2.blob") : "";
  mkfs(layout.options, image, *suite_dir / "src", blob);
  auto mapped = open_image(image, blob, true);
  auto unmapped = open_image(image, blob, false);
  EXPECT_EQ(transcript(*unmapped, 1000), transcript(*mapped, 1000));
}

INSTANTIATE_TEST_SUITE_P(
    Mkfs, ErofsLayoutTest,
    ::testing::Values(
        Layout{"default", "", false, {}}, Layout{"extended", "-Eforce-inode-extended", false, {}},
        Layout{"noinline", "-Enoinline_data", false, {}},
        Layout{"compact", "-T 1000000", false, uint64_t{1000000}},
        Layout{"chunk4k", "--chunksize=4096", false, {}}, Layout{"chunk64k", "--chunksize=65536", false, {}},
        Layout{"blob4k", "--chunksize=4096", true, {}}, Layout{"blob64k", "--chunksize=65536", true, {}},
        Layout{"blob_compact", "--chunksize=8192 -T 77", true, uint64_t{77}}),
    [](const ::testing::TestParamInfo<Layout>& param) { return std::string(param.param.name); });

// ---- one small tree per test -------------------------------------------------------------------

class ErofsImageTest : public ::testing::Test {
 protected:
  std::string src() const { return dir_ / "src"; }
  std::string path(const std::string& name) const { return dir_ / name; }
  TempDir dir_;
};

TEST_F(ErofsImageTest, SuperblockDescribesTheImage) {
  fs::create_directories(src() + "/d");
  make_file(src() + "/f", "x");
  mkfs("-T 4242 -U 0123456f-89ab-cdef-0123-456789abcdef", path("i"), src());
  auto img = open_image(path("i"));
  const SuperblockInfo& sb = img->superblock();
  EXPECT_EQ(sb.block_size, 4096U);
  EXPECT_EQ(sb.build_time, 4242U);
  EXPECT_EQ(sb.inodes, 3U);
  EXPECT_EQ(sb.feature_compat & 0x1U, 0x1U) << "mkfs.erofs 1.5 always writes a superblock checksum";
  EXPECT_EQ(sb.feature_incompat, 0U);
  EXPECT_EQ(sb.uuid[0], 0x01);
  EXPECT_EQ(sb.uuid[3], 0x6f);
  EXPECT_EQ(sb.uuid[15], 0xef);
  EXPECT_TRUE(img->devices().empty());
  EXPECT_EQ(sb.blocks * sb.block_size, fs::file_size(path("i")));
  Inode root = root_of(*img);
  EXPECT_TRUE(S_ISDIR(root.mode));
  EXPECT_EQ(must(img->lookup(root, "..")), sb.root_nid);
}

TEST_F(ErofsImageTest, BlobImageHasOneUntaggedDeviceAndChunkIndexes) {
  fs::create_directories(src());
  make_file(src() + "/f", random_bytes(200000, 1));
  mkfs("--chunksize=65536", path("i"), src(), path("blob"));
  auto img = open_image(path("i"), path("blob"));
  ASSERT_EQ(img->devices().size(), 1U);
  const DeviceSlot& slot = img->devices()[0];
  EXPECT_EQ(slot.device_id, 1);
  EXPECT_EQ(slot.tag, "");
  EXPECT_EQ(slot.blocks, 0U) << "mkfs.erofs 1.5 leaves the slot's block count zero";
  EXPECT_EQ(slot.mapped_blkaddr, 0U);
  EXPECT_EQ(img->superblock().feature_incompat, 0x4U | 0x8U);  // chunked file + device table
  Inode f = resolve(*img, "/f");
  EXPECT_EQ(f.datalayout, 4);
  EXPECT_EQ(f.raw_blkaddr & 0x3FU, 0x20U | 4U) << "chunk indexes, chunk = block << 4";
  EXPECT_EQ(read_all(*img, f), read_file(src() + "/f"));
  // The data really lives in the blob: the image alone is one block.
  EXPECT_EQ(fs::file_size(path("i")), 4096U);
}

TEST_F(ErofsImageTest, ChunkedImageWithoutBlobUsesBlockMap) {
  fs::create_directories(src());
  make_file(src() + "/f", random_bytes(50000, 2));
  mkfs("--chunksize=4096", path("i"), src());
  auto img = open_image(path("i"));
  Inode f = resolve(*img, "/f");
  EXPECT_EQ(f.datalayout, 4);
  EXPECT_EQ(f.raw_blkaddr & 0x3FU, 0U) << "4-byte block map entries, chunk = block";
}

TEST_F(ErofsImageTest, OpeningABlobImageNeedsAResolver) {
  fs::create_directories(src());
  make_file(src() + "/f", "data");
  mkfs("--chunksize=4096", path("i"), src(), path("blob"));
  auto no_resolver = ErofsImage::open(local(path("i"), true), nullptr);
  ASSERT_FALSE(no_resolver.ok());
  EXPECT_EQ(no_resolver.error().code, EINVAL);
  EXPECT_NE(no_resolver.error().message.find("1 extra device"), std::string::npos)
      << no_resolver.error().message;

  auto failing = ErofsImage::open(local(path("i"), true),
                                  [](const DeviceSlot&) -> Result<std::shared_ptr<const ByteSource>> {
                                    return Error{ENOENT, "blob not found"};
                                  });
  ASSERT_FALSE(failing.ok());
  EXPECT_EQ(failing.error().code, ENOENT);
  EXPECT_NE(failing.error().message.find("resolving device 1"), std::string::npos) << failing.error().message;
}

TEST_F(ErofsImageTest, ReadingFromATruncatedBlobIsEio) {
  fs::create_directories(src());
  make_file(src() + "/f", random_bytes(100000, 3));
  mkfs("--chunksize=4096", path("i"), src(), path("blob"));
  std::string blob = read_file(path("blob"));
  blob.resize(50000);
  auto img = open_bytes(read_file(path("i")), blob);
  Inode f = resolve(*img, "/f");
  std::string buf(4096, '\0');
  EXPECT_TRUE(img->read(f, 0, std::as_writable_bytes(std::span(buf))).ok());
  auto r = img->read(f, 60000, std::as_writable_bytes(std::span(buf)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EIO);
  EXPECT_NE(r.error().message.find("nid " + std::to_string(f.nid)), std::string::npos) << r.error().message;
}

TEST_F(ErofsImageTest, CompactInodesTakeTheBuildTime) {
  fs::create_directories(src());
  make_file(src() + "/f", "x");
  set_mtime(src() + "/f", 999, 5);
  mkfs("-T 31337", path("i"), src());
  auto img = open_image(path("i"));
  Inode f = resolve(*img, "/f");
  EXPECT_EQ(f.header_size, 32);
  EXPECT_EQ(f.mtime, 31337U);
  EXPECT_EQ(f.mtime_nsec, 0U);
}

TEST_F(ErofsImageTest, PerFileMtimesNeedExtendedInodes) {
  fs::create_directories(src());
  make_file(src() + "/f", "x");
  set_mtime(src() + "/f", 1700000000, 987654321);
  mkfs("", path("i"), src());
  auto img = open_image(path("i"));
  Inode f = resolve(*img, "/f");
  EXPECT_EQ(f.header_size, 64);
  EXPECT_EQ(f.mtime, 1700000000U);
  EXPECT_EQ(f.mtime_nsec, 987654321U);
}

TEST_F(ErofsImageTest, TailsAreInlineByDefaultAndPlainWithNoinlineData) {
  fs::create_directories(src());
  make_file(src() + "/f", random_bytes(5000, 4));
  mkfs("", path("inline"), src());
  mkfs("-Enoinline_data", path("plain"), src());
  auto inline_img = open_image(path("inline"));
  auto plain_img = open_image(path("plain"));
  EXPECT_EQ(resolve(*inline_img, "/f").datalayout, 2);
  EXPECT_EQ(resolve(*plain_img, "/f").datalayout, 0);
  EXPECT_EQ(read_all(*inline_img, resolve(*inline_img, "/f")), read_file(src() + "/f"));
  EXPECT_EQ(read_all(*plain_img, resolve(*plain_img, "/f")), read_file(src() + "/f"));
}

TEST_F(ErofsImageTest, ReadsAtEveryOffsetAndLengthMatchTheFile) {
  fs::create_directories(src());
  const std::string content = random_bytes(3 * 4096 + 1234, 6);
  make_file(src() + "/f", content);
  for (const char* options : {"", "-Enoinline_data", "--chunksize=4096"}) {
    SCOPED_TRACE(options);
    mkfs(options, path("i"), src());
    auto img = open_image(path("i"));
    Inode f = resolve(*img, "/f");
    std::mt19937 rng(7);
    for (int i = 0; i < 300; ++i) {
      const uint64_t offset = rng() % (content.size() + 10);
      std::string buf(rng() % 9000, '\0');
      const size_t n = must(img->read(f, offset, std::as_writable_bytes(std::span(buf))));
      const size_t expected = offset >= content.size() ? 0 : std::min(buf.size(), content.size() - offset);
      ASSERT_EQ(n, expected) << offset;
      ASSERT_EQ(buf.substr(0, n), content.substr(std::min<size_t>(offset, content.size()), n)) << offset;
    }
    std::string buf(10, '\0');
    EXPECT_EQ(must(img->read(f, content.size(), std::as_writable_bytes(std::span(buf)))), 0U);
    EXPECT_EQ(must(img->read(f, UINT64_MAX, std::as_writable_bytes(std::span(buf)))), 0U);
    EXPECT_EQ(must(img->read(f, 0, {})), 0U);
  }
}

TEST_F(ErofsImageTest, FlatFilesAreAllDataToSeek) {
  fs::create_directories(src());
  make_file(src() + "/f", random_bytes(10000, 8));
  make_file(src() + "/empty", "");
  mkfs("", path("i"), src());
  auto img = open_image(path("i"));
  Inode f = resolve(*img, "/f");
  EXPECT_EQ(must(img->seek(f, 0, SEEK_DATA)), 0U);
  EXPECT_EQ(must(img->seek(f, 5000, SEEK_DATA)), 5000U);
  EXPECT_EQ(must(img->seek(f, 0, SEEK_HOLE)), 10000U);
  EXPECT_EQ(must(img->seek(f, 9999, SEEK_HOLE)), 10000U);
  EXPECT_EQ(img->seek(f, 10000, SEEK_DATA).error().code, ENXIO);
  EXPECT_EQ(img->seek(f, 10000, SEEK_HOLE).error().code, ENXIO);
  EXPECT_EQ(img->seek(f, 0, SEEK_SET).error().code, EINVAL);
  EXPECT_EQ(img->seek(resolve(*img, "/empty"), 0, SEEK_DATA).error().code, ENXIO);
}

// The offset of a chunk-based file's chunk table, computed from the public inode fields.
uint64_t chunk_table_offset(const std::string& image, const Inode& inode, uint64_t unit) {
  const uint64_t meta_base = uint64_t{get_le<uint32_t>(image, kSb + 40)}
                             << static_cast<uint8_t>(image[kSb + 12]);
  const uint64_t xattrs = inode.xattr_icount == 0 ? 0 : 12 + (uint64_t{inode.xattr_icount} - 1) * 4;
  const uint64_t end = meta_base + inode.nid * 32 + inode.header_size + xattrs;
  return (end + unit - 1) / unit * unit;
}

TEST_F(ErofsImageTest, NullBlockMapEntriesAreHolesThatReadAsZeros) {
  fs::create_directories(src());
  const uint64_t chunk = 4096;
  std::string content = random_bytes(16 * chunk + 100, 10);  // 17 chunks, the last one partial
  make_file(src() + "/f", content);
  mkfs("--chunksize=4096", path("i"), src());
  std::string image = read_file(path("i"));
  Inode f = resolve(*open_bytes(image), "/f");
  const uint64_t table = chunk_table_offset(image, f, 4);
  for (uint64_t hole : {2, 3, 7, 16}) {
    put_le<uint32_t>(image, table + hole * 4, 0xFFFFFFFF);
    std::fill_n(content.begin() + static_cast<long>(hole * chunk),
                std::min<uint64_t>(chunk, content.size() - hole * chunk), '\0');
  }
  fix_checksum(image);
  auto img = open_bytes(image);
  f = resolve(*img, "/f");
  EXPECT_EQ(read_all(*img, f, 1000), content);
  EXPECT_EQ(read_all(*img, f), content);

  EXPECT_EQ(must(img->seek(f, 0, SEEK_DATA)), 0U);
  EXPECT_EQ(must(img->seek(f, 0, SEEK_HOLE)), 2 * chunk);
  EXPECT_EQ(must(img->seek(f, 2 * chunk + 10, SEEK_HOLE)), 2 * chunk + 10);
  EXPECT_EQ(must(img->seek(f, 2 * chunk + 10, SEEK_DATA)), 4 * chunk);
  EXPECT_EQ(must(img->seek(f, 4 * chunk, SEEK_HOLE)), 7 * chunk);
  EXPECT_EQ(must(img->seek(f, 8 * chunk, SEEK_HOLE)), 16 * chunk);
  EXPECT_EQ(must(img->seek(f, 15 * chunk + 5, SEEK_DATA)), 15 * chunk + 5);
  EXPECT_EQ(img->seek(f, 16 * chunk, SEEK_DATA).error().code, ENXIO);
  EXPECT_EQ(must(img->seek(f, 16 * chunk + 99, SEEK_HOLE)), 16 * chunk + 99);
  EXPECT_EQ(img->seek(f, content.size(), SEEK_HOLE).error().code, ENXIO);
}

TEST_F(ErofsImageTest, NullChunkIndexesInABlobImageAreHoles) {
  fs::create_directories(src());
  const uint64_t chunk = 8192;
  std::string content = random_bytes(6 * chunk, 11);
  make_file(src() + "/f", content);
  mkfs("--chunksize=8192", path("i"), src(), path("blob"));
  std::string image = read_file(path("i"));
  const std::string blob = read_file(path("blob"));
  Inode f = resolve(*open_bytes(image, blob), "/f");
  const uint64_t table = chunk_table_offset(image, f, 8);
  EXPECT_EQ(get_le<uint16_t>(image, table + 2), 1) << "mkfs.erofs names the blob as device 1";
  put_le<uint32_t>(image, table + uint64_t{1} * 8 + 4, 0xFFFFFFFF);
  put_le<uint32_t>(image, table + uint64_t{5} * 8 + 4, 0xFFFFFFFF);
  std::fill_n(content.begin() + chunk, chunk, '\0');
  std::fill_n(content.begin() + 5 * chunk, chunk, '\0');
  fix_checksum(image);
  auto img = open_bytes(image, blob);
  f = resolve(*img, "/f");
  EXPECT_EQ(read_all(*img, f, 3000), content);
  EXPECT_EQ(must(img->seek(f, 0, SEEK_HOLE)), chunk);
  EXPECT_EQ(must(img->seek(f, chunk, SEEK_DATA)), 2 * chunk);
  EXPECT_EQ(must(img->seek(f, 2 * chunk, SEEK_HOLE)), 5 * chunk);
  EXPECT_EQ(img->seek(f, 5 * chunk, SEEK_DATA).error().code, ENXIO);
}

TEST_F(ErofsImageTest, ChunkIndexDeviceIdsAreMaskedByTheDeviceCount) {
  fs::create_directories(src());
  const std::string content = random_bytes(size_t{3} * 4096, 12);
  make_file(src() + "/f", content);
  mkfs("--chunksize=4096", path("i"), src(), path("blob"));
  std::string image = read_file(path("i"));
  const std::string blob = read_file(path("blob"));
  Inode f = resolve(*open_bytes(image, blob), "/f");
  // With one extra device the kernel keeps one id bit: 3 & 1 = device 1.
  put_le<uint16_t>(image, chunk_table_offset(image, f, 8) + 2, 3);
  fix_checksum(image);
  auto img = open_bytes(image, blob);
  EXPECT_EQ(read_all(*img, resolve(*img, "/f")), content);
}

TEST_F(ErofsImageTest, ChunkIndexNamingAMissingDeviceIsEio) {
  fs::create_directories(src());
  make_file(src() + "/f", random_bytes(size_t{2} * 4096, 14));
  mkfs("--chunksize=4096", path("i"), src(), path("blob"));
  std::string image = read_file(path("i"));
  const std::string blob = read_file(path("blob"));
  Inode f = resolve(*open_bytes(image, blob), "/f");
  // Two (empty) device slots in the zeroed tail of block 0 keep two id bits; id 3 names no device.
  const uint64_t table = 4096 - 2 * 128;
  ASSERT_EQ(image.substr(table, 256), std::string(256, '\0')) << "the tail of block 0 is in use";
  put_le<uint16_t>(image, kSb + 86, 2);
  put_le<uint16_t>(image, kSb + 88, static_cast<uint16_t>(table / 128));
  put_le<uint16_t>(image, chunk_table_offset(image, f, 8) + 8 + 2, 3);
  fix_checksum(image);
  int resolved = 0;
  auto blob_source = memory(blob, true);
  auto img = must(ErofsImage::open(memory(image, true),
                                   [&](const DeviceSlot& slot) -> Result<std::shared_ptr<const ByteSource>> {
                                     EXPECT_EQ(slot.device_id, ++resolved);
                                     return blob_source;
                                   }));
  EXPECT_EQ(resolved, 2);
  f = resolve(*img, "/f");
  std::string buf(4096, '\0');
  EXPECT_TRUE(img->read(f, 0, std::as_writable_bytes(std::span(buf))).ok());
  auto r = img->read(f, 4096, std::as_writable_bytes(std::span(buf)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EIO);
  EXPECT_NE(r.error().message.find("device 3"), std::string::npos) << r.error().message;
}

TEST_F(ErofsImageTest, DevicesCanBeAddressedByMappedBlockAddress) {
  fs::create_directories(src());
  const std::string content = random_bytes(5 * 4096 + 7, 13);
  make_file(src() + "/f", content);
  mkfs("--chunksize=4096", path("i"), src(), path("blob"));
  std::string image = read_file(path("i"));
  const std::string blob = read_file(path("blob"));
  Inode f = resolve(*open_bytes(image, blob), "/f");
  // Move the blob to blocks 1000.. of the flat address space and point the chunks at device 0
  // there, as a flattened Nydus image does; reads must still come from the blob.
  const uint32_t mapped = 1000;
  const uint64_t slot = uint64_t{get_le<uint16_t>(image, kSb + 88)} * 128;
  put_le<uint32_t>(image, slot + 64, static_cast<uint32_t>(blob.size() / 4096));
  put_le<uint32_t>(image, slot + 68, mapped);
  const uint64_t table = chunk_table_offset(image, f, 8);
  for (uint64_t c = 0; c < 6; ++c) {
    put_le<uint16_t>(image, table + c * 8 + 2, 0);
    put_le<uint32_t>(image, table + c * 8 + 4, get_le<uint32_t>(image, table + c * 8 + 4) + mapped);
  }
  fix_checksum(image);
  auto img = open_bytes(image, blob);
  ASSERT_EQ(img->devices().size(), 1U);
  EXPECT_EQ(img->devices()[0].mapped_blkaddr, mapped);
  EXPECT_EQ(read_all(*img, resolve(*img, "/f")), content);
}

// One 5000-entry directory for both tests: creating the files is the slow part.
class ErofsLargeDirectoryTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    suite_dir = std::make_unique<TempDir>();
    fs::create_directories(*suite_dir / "src/big");
    suite_names = std::make_unique<std::vector<std::string>>();
    for (int i = 0; i < 5000; ++i) {
      // Varied lengths spread the names unevenly over many blocks.
      suite_names->push_back("entry_" + std::to_string(i * 7919 % 100000) +
                             std::string(static_cast<size_t>(i % 40), 'x'));
      make_file(*suite_dir / ("src/big/" + suite_names->back()), "");
    }
    mkfs("", *suite_dir / "i", *suite_dir / "src");
  }
  static void TearDownTestSuite() {
    suite_dir.reset();
    suite_names.reset();
  }

 protected:
  static std::unique_ptr<TempDir> suite_dir;
  static std::unique_ptr<std::vector<std::string>> suite_names;
};
std::unique_ptr<TempDir> ErofsLargeDirectoryTest::suite_dir;
std::unique_ptr<std::vector<std::string>> ErofsLargeDirectoryTest::suite_names;

TEST_F(ErofsLargeDirectoryTest, LookupFindsEveryNameAndMissesOthers) {
  auto img = open_image(*suite_dir / "i");
  Inode big = resolve(*img, "/big");
  EXPECT_GT(big.size, 20U * 4096) << "the directory should span many blocks";
  std::set<uint64_t> nids;
  for (const auto& name : *suite_names) {
    auto nid = img->lookup(big, name);
    ASSERT_TRUE(nid.ok()) << name << ": " << nid.error().message;
    nids.insert(*nid);
    auto miss = img->lookup(big, name + "_");
    ASSERT_FALSE(miss.ok());
    EXPECT_EQ(miss.error().code, ENOENT);
  }
  EXPECT_EQ(nids.size(), suite_names->size());
  for (const std::string& absent :
       {std::string("\x01"), std::string("~~~"), std::string("entry_"), std::string("a")}) {
    EXPECT_EQ(img->lookup(big, absent).error().code, ENOENT) << absent;
  }
}

TEST_F(ErofsLargeDirectoryTest, ReadDirResumesFromEveryCookie) {
  auto img = open_image(*suite_dir / "i");
  Inode big = resolve(*img, "/big");
  const auto all = list_dir(*img, big);
  ASSERT_EQ(all.size(), 5002U);
  EXPECT_EQ(all[0].name, ".");
  EXPECT_EQ(all[1].name, "..");
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_NE(all[i].next_cookie, 0U);
    if (i > 0) {
      ASSERT_GT(all[i].next_cookie, all[i - 1].next_cookie);
      ASSERT_LT(all[i - 1].name, all[i].name) << "entries are in on-disk (sorted) order";
    }
  }
  // Resuming at each entry's cookie yields exactly the entry after it.
  for (size_t i = 0; i + 1 < all.size(); ++i) {
    auto next = list_dir(*img, big, all[i].next_cookie, 1);
    ASSERT_EQ(next.size(), 1U);
    ASSERT_EQ(next[0].name, all[i + 1].name);
    ASSERT_EQ(next[0].next_cookie, all[i + 1].next_cookie);
  }
  EXPECT_TRUE(list_dir(*img, big, all.back().next_cookie).empty());
  // A full resume from a cookie in the middle gives the rest.
  auto rest = list_dir(*img, big, all[2500].next_cookie);
  ASSERT_EQ(rest.size(), all.size() - 2501);
  EXPECT_EQ(rest.back().name, all.back().name);
  // Cookies survive reopening the image: they come from positions, not from a table.
  auto reopened = open_image(*suite_dir / "i");
  auto again = list_dir(*reopened, resolve(*reopened, "/big"), all[1234].next_cookie, 1);
  EXPECT_EQ(again[0].name, all[1235].name);
}

TEST_F(ErofsImageTest, InodeLookupAndReadDoNotAllocate) {
  fs::create_directories(src() + "/d");
  make_file(src() + "/d/inline", random_bytes(5000, 30));
  make_file(src() + "/d/plain", random_bytes(8192, 31));
  make_file(src() + "/d/xattr", "x");
  set_xattr(src() + "/d/xattr", "user.k", "v");
  for (int i = 0; i < 300; ++i) make_file(src() + "/d/f" + std::to_string(i), "");
  make_file(src() + "/chunked", random_bytes(20000, 32));
  mkfs("", path("i"), src());
  mkfs("--chunksize=4096", path("c"), src(), path("blob"));
  for (const auto& [image, blob] :
       {std::pair{path("i"), std::string()}, std::pair{path("c"), path("blob")}}) {
    SCOPED_TRACE(image);
    auto img = open_image(image, blob);
    const Inode d = resolve(*img, "/d");
    const uint64_t chunked_nid = must(img->lookup(root_of(*img), "chunked"));
    std::string buf(9000, '\0');
    const auto out = std::as_writable_bytes(std::span(buf));
    size_t failures = 0;
    size_t allocations = 0;
    {
      const testkit::AllocationCounter counter;
      for (const char* name : {"inline", "plain", "xattr", "f150", "f299"}) {
        auto nid = img->lookup(d, name);
        auto inode = nid.ok() ? img->inode(*nid) : Result<Inode>(nid.error());
        failures += !inode.ok() || !img->read(*inode, 100, out).ok() || !img->read(*inode, 0, out).ok();
      }
      auto chunked = img->inode(chunked_nid);
      failures += !chunked.ok() || !img->read(*chunked, 3000, out).ok();
      failures += img->lookup(d, "missing").ok();
      failures += img->lookup(d, "zzz").ok();
      allocations = counter.count();
    }
    EXPECT_EQ(failures, 0U);
    EXPECT_EQ(allocations, 0U);
  }
}

TEST_F(ErofsImageTest, DirectoryErrorsNameTheirCause) {
  fs::create_directories(src() + "/d");
  make_file(src() + "/f", "x");
  mkfs("", path("i"), src());
  auto img = open_image(path("i"));
  Inode f = resolve(*img, "/f");
  Inode d = resolve(*img, "/d");
  EXPECT_EQ(img->lookup(f, "x").error().code, ENOTDIR);
  EXPECT_EQ(img->read_dir(f, 0, [](const DirEntry&) { return true; }).error().code, ENOTDIR);
  EXPECT_EQ(img->lookup(d, "").error().code, ENOENT);
  EXPECT_EQ(img->lookup(d, std::string(256, 'a')).error().code, ENAMETOOLONG);
  EXPECT_EQ(img->lookup(d, "missing").error().code, ENOENT);
  EXPECT_EQ(img->read_link(f).error().code, EINVAL);
  std::string buf(10, '\0');
  EXPECT_EQ(img->read(d, 0, std::as_writable_bytes(std::span(buf))).error().code, EISDIR);
  EXPECT_TRUE(list_dir(*img, d, uint64_t{1} << 40).empty()) << "a cookie past the end ends the listing";
}

TEST_F(ErofsImageTest, DeviceNumbersMatchStRdev) {
  fs::create_directories(src());
  const std::vector<std::pair<std::string, dev_t>> devices = {{"c1", makedev(1, 3)},
                                                              {"c2", makedev(4095, 0xFFFFF)},
                                                              {"c3", makedev(200, 256)},
                                                              {"b1", makedev(8, 17)}};
  for (const auto& [name, dev] : devices) {
    ASSERT_EQ(::mknod((src() + "/" + name).c_str(), (name[0] == 'c' ? S_IFCHR : S_IFBLK) | 0600, dev), 0);
  }
  mkfs("", path("i"), src());
  auto img = open_image(path("i"));
  for (const auto& [name, dev] : devices) {
    struct stat st {};
    ASSERT_EQ(::lstat((src() + "/" + name).c_str(), &st), 0);
    Inode inode = resolve(*img, "/" + name);
    EXPECT_EQ(inode.rdev, st.st_rdev) << name;
    EXPECT_EQ(inode.rdev, dev) << name;
    EXPECT_EQ(inode.size, 0U);
  }
}

TEST_F(ErofsImageTest, SharedXattrsAreStoredOnceAndReadFromTheSharedArea) {
  fs::create_directories(src());
  for (int i = 0; i < 3; ++i) {
    const std::string f = src() + "/f" + std::to_string(i);
    make_file(f, "x");
    set_xattr(f, "user.shared", "same everywhere");
    set_xattr(f, "user.mine", std::to_string(i));
  }
  mkfs("-x 1", path("i"), src());
  const std::string image = read_file(path("i"));
  auto img = open_image(path("i"));
  for (int i = 0; i < 3; ++i) {
    Inode f = resolve(*img, "/f" + std::to_string(i));
    const uint64_t meta_base = uint64_t{get_le<uint32_t>(image, kSb + 40)} << 12U;
    const uint8_t shared_count = static_cast<uint8_t>(image[meta_base + f.nid * 32 + f.header_size + 4]);
    EXPECT_EQ(shared_count, 1) << "user.shared should be a shared xattr";
    EXPECT_EQ(must(img->get_xattr(f, "user.shared")), "same everywhere");
    EXPECT_EQ(must(img->get_xattr(f, "user.mine")), std::to_string(i));
    auto names = must(img->list_xattrs(f));
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
              (std::set<std::string>{"user.shared", "user.mine"}));
  }
}

TEST_F(ErofsImageTest, XattrLookupsByPrefixAndMisses) {
  fs::create_directories(src());
  make_file(src() + "/f", "x");
  set_xattr(src() + "/f", "user.a", "1");
  set_xattr(src() + "/f", "trusted.a", "2");
  set_xattr(src() + "/f", "security.a", "3");
  // Not a minimal ACL: ext4 folds those into the mode and stores no xattr.
  set_xattr(src() + "/f", "system.posix_acl_access",
            posix_acl({{0x01, 6, kAclUndefinedId},
                       {0x02, 6, 4321},
                       {0x04, 4, kAclUndefinedId},
                       {0x10, 6, kAclUndefinedId},
                       {0x20, 4, kAclUndefinedId}}));
  make_file(src() + "/none", "y");
  mkfs("", path("i"), src());
  auto img = open_image(path("i"));
  Inode f = resolve(*img, "/f");
  EXPECT_EQ(must(img->get_xattr(f, "user.a")), "1");
  EXPECT_EQ(must(img->get_xattr(f, "trusted.a")), "2");
  EXPECT_EQ(must(img->get_xattr(f, "security.a")), "3");
  EXPECT_EQ(must(img->get_xattr(f, "system.posix_acl_access")),
            source_xattrs(src() + "/f")["system.posix_acl_access"]);
  for (const char* missing : {"user.b", "user.", "user", "os2.a", "system.posix_acl_default",
                              "system.posix_acl_accessx", "", "trusted.a.b"}) {
    auto r = img->get_xattr(f, missing);
    ASSERT_FALSE(r.ok()) << missing;
    EXPECT_EQ(r.error().code, ENODATA) << missing;
  }
  Inode none = resolve(*img, "/none");
  EXPECT_TRUE(must(img->list_xattrs(none)).empty());
  EXPECT_EQ(img->get_xattr(none, "user.a").error().code, ENODATA);
}

TEST_F(ErofsImageTest, SharedXattrsCrossingABlockBoundaryAreReadWhole) {
  fs::create_directories(src());
  // Shared entries are packed back to back in the shared xattr area; four of ~1.3 KB cannot
  // all fit in one block.
  // ext4 holds at most ~4 KiB of xattrs per inode, so two pairs of files share two each.
  for (int i = 0; i < 4; ++i) {
    const std::string f = src() + "/f" + std::to_string(i);
    make_file(f, "x");
    for (int k = 2 * (i / 2); k < 2 * (i / 2) + 2; ++k) {
      set_xattr(f, "user.shared" + std::to_string(k), random_bytes(1300, static_cast<uint32_t>(k)));
    }
  }
  mkfs("-x 1", path("i"), src());
  const std::string image = read_file(path("i"));
  auto img = open_image(path("i"));
  const uint64_t meta_base = uint64_t{get_le<uint32_t>(image, kSb + 40)} << 12U;
  const uint64_t shared_base = uint64_t{get_le<uint32_t>(image, kSb + 44)} << 12U;
  bool crossed = false;
  for (int i = 0; i < 4; ++i) {
    const std::string name = "/f" + std::to_string(i);
    Inode f = resolve(*img, name);
    const uint64_t area = meta_base + f.nid * 32 + f.header_size;
    const auto shared_count = static_cast<uint8_t>(image[area + 4]);
    EXPECT_EQ(shared_count, 2);
    for (uint64_t k = 0; k < shared_count; ++k) {
      const uint64_t entry = shared_base + uint64_t{get_le<uint32_t>(image, area + 12 + k * 4)} * 4;
      const uint64_t size = 4 + static_cast<uint8_t>(image[entry]) + get_le<uint16_t>(image, entry + 2);
      if (entry / 4096 != (entry + size - 1) / 4096) crossed = true;
    }
    EXPECT_EQ(image_xattrs(*img, f), source_xattrs(src() + name));
  }
  EXPECT_TRUE(crossed) << "no shared xattr crossed a block boundary; the test lost its point";
}

TEST_F(ErofsImageTest, InlineXattrAreaLargerThanABlockIsReadWhole) {
  // ext4 caps an inode's xattrs at one block; tmpfs does not, so build this tree there.
  if (::access("/dev/shm", W_OK) != 0) GTEST_SKIP() << "needs a writable /dev/shm";
  const char* saved = std::getenv("TMPDIR");
  const std::string saved_value = saved != nullptr ? saved : "";
  ::setenv("TMPDIR", "/dev/shm", 1);
  TempDir shm;
  if (saved != nullptr) {
    ::setenv("TMPDIR", saved_value.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
  const std::string f = shm / "f";
  make_file(f, "tail data");
  if (::lsetxattr(f.c_str(), "user.big", random_bytes(9000, 1).data(), 9000, 0) != 0) {
    GTEST_SKIP() << "/dev/shm does not take a 9000-byte xattr";
  }
  set_xattr(f, "user.bigger", random_bytes(20000, 2));
  set_xattr(f, "user.small", "s");
  mkfs("", path("i"), shm.path());
  auto img = open_image(path("i"));
  Inode inode = resolve(*img, "/f");
  EXPECT_GT(inode.xattr_icount * 4U, 2U * 4096) << "the inline area should span blocks";
  EXPECT_EQ(image_xattrs(*img, inode), source_xattrs(f));
  EXPECT_EQ(read_all(*img, inode), "tail data");
}

TEST_F(ErofsImageTest, CompressedImagesAreRefusedNamingTheFeature) {
  fs::create_directories(src());
  make_file(src() + "/compressible", std::string(100000, 'a'));
  make_file(src() + "/small", "tiny");
  mkfs("-zlz4", path("i"), src());
  auto meta = storage::LocalFile::open(path("i"), true);
  ASSERT_TRUE(meta.ok());
  auto img = ErofsImage::open(*meta, nullptr);
  ASSERT_FALSE(img.ok()) << "a compressed image must be refused when opened";
  EXPECT_EQ(img.error().code, EOPNOTSUPP);
  EXPECT_NE(img.error().message.find("LZ4 compression"), std::string::npos) << img.error().message;
}

TEST_F(ErofsImageTest, UnsupportedIncompatFeaturesAreNamed) {
  fs::create_directories(src());
  make_file(src() + "/f", "x");
  mkfs("", path("i"), src());
  const std::string original = read_file(path("i"));
  const std::vector<std::pair<uint32_t, std::string>> features = {
      {0x2, "compr_cfgs"},
      {0x10, "ztailpacking"},
      {0x20, "fragments"},
      {0x40, "xattr_prefixes"},
      {0x80, "unknown (incompat 0x80)"},
      {0x80000000, "unknown (incompat 0x80000000)"}};
  for (const auto& [bit, name] : features) {
    std::string image = original;
    put_le<uint32_t>(image, kSb + 80, get_le<uint32_t>(image, kSb + 80) | bit);
    fix_checksum(image);
    auto r = ErofsImage::open(memory(image, true), nullptr);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.error().code, EOPNOTSUPP) << name;
    EXPECT_NE(r.error().message.find("unsupported EROFS feature: "), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(name), std::string::npos) << r.error().message;
  }
}

TEST_F(ErofsImageTest, PatchingAFeatureWithoutTheChecksumIsAChecksumError) {
  fs::create_directories(src());
  make_file(src() + "/f", "x");
  mkfs("", path("i"), src());
  std::string image = read_file(path("i"));
  put_le<uint32_t>(image, kSb + 80, 0x10);
  auto r = ErofsImage::open(memory(image, true), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EIO);
  EXPECT_NE(r.error().message.find("checksum mismatch"), std::string::npos) << r.error().message;
  // Without the checksum feature the patched bit is what gets reported.
  put_le<uint32_t>(image, kSb + 8, get_le<uint32_t>(image, kSb + 8) & ~1U);
  auto unchecked = ErofsImage::open(memory(image, true), nullptr);
  ASSERT_FALSE(unchecked.ok());
  EXPECT_EQ(unchecked.error().code, EOPNOTSUPP);
}

TEST_F(ErofsImageTest, NonErofsInputsAreRejected) {
  for (const std::string& bytes :
       {std::string(), std::string(1151, '\0'), std::string(8192, '\0'), random_bytes(8192, 14)}) {
    auto r = ErofsImage::open(memory(bytes, true), nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EIO) << r.error().message;
  }
  EXPECT_EQ(ErofsImage::open(nullptr, nullptr).error().code, EINVAL);
}

TEST_F(ErofsImageTest, ConcurrentReadersSeeTheSameImage) {
  build_tree(src(), false);
  mkfs("--chunksize=4096", path("i"), src());
  auto img = open_image(path("i"));
  const Transcript expected = transcript(*img, 1000);
  std::vector<Transcript> seen(4);
  std::vector<std::thread> threads;
  threads.reserve(seen.size());
  for (auto& t : seen) threads.emplace_back([&img, &t] { t = transcript(*img, 1000); });
  for (auto& t : threads) t.join();
  for (const auto& t : seen) EXPECT_EQ(t, expected);
}

// ---- images mkfs.erofs 1.5 cannot write: other block sizes ------------------------------------

// Writes a minimal image by hand: root directory (flat plain) with a plain file, an inline-tail
// file, a chunk-based file with a hole and a symlink; compact inodes; checksum set.
std::string synthetic_image(unsigned block_bits, const std::string& plain, const std::string& tail_file) {
  const uint64_t bs = uint64_t{1} << block_bits;
  const uint64_t meta_block = (1024 + 128 + bs - 1) / bs;  // first block after the superblock
  const uint64_t meta_base = meta_block * bs;
  // nids: root 0, plain 2, inline 4, chunked 8 (each compact inode is 32 bytes; leave room).
  const uint64_t root_nid = 0;
  const uint64_t plain_nid = 2;
  const uint64_t chunked_nid = 4;
  const uint64_t link_nid = 6;
  const uint64_t inline_nid =
      (bs / 32) - 1 - (tail_file.size() + 31) / 32;  // tail stays in the first meta block
  const uint64_t plain_blocks = (plain.size() + bs - 1) / bs;
  const uint64_t dir_block = meta_block + 1;
  const uint64_t data_block = dir_block + 1;
  const uint64_t chunk_blocks = 3;  // chunked file: 3 blocks, the middle one a hole
  const uint64_t chunk_data = data_block + plain_blocks;
  std::string image((chunk_data + chunk_blocks) * bs, '\0');

  put_le<uint32_t>(image, kSb + 0, 0xE0F5E1E2);
  put_le<uint32_t>(image, kSb + 8, 1);  // SB_CHKSUM
  image[kSb + 12] = static_cast<char>(block_bits);
  put_le<uint16_t>(image, kSb + 14, static_cast<uint16_t>(root_nid));
  put_le<uint64_t>(image, kSb + 16, 5);
  put_le<uint64_t>(image, kSb + 24, 1111);
  put_le<uint32_t>(image, kSb + 36, static_cast<uint32_t>(image.size() / bs));
  put_le<uint32_t>(image, kSb + 40, static_cast<uint32_t>(meta_block));
  put_le<uint32_t>(image, kSb + 80, 0x4);  // chunked files

  auto inode = [&](uint64_t nid, uint16_t layout, uint16_t mode, uint32_t size, uint32_t u) {
    const uint64_t at = meta_base + nid * 32;
    put_le<uint16_t>(image, at + 0, static_cast<uint16_t>(layout << 1U));
    put_le<uint16_t>(image, at + 4, mode);
    put_le<uint16_t>(image, at + 6, 1);
    put_le<uint32_t>(image, at + 8, size);
    put_le<uint32_t>(image, at + 16, u);
  };
  // Root directory: one block of dirents.
  const std::vector<std::tuple<std::string, uint64_t, uint8_t>> entries = {
      {".", root_nid, 2},        {"..", root_nid, 2},   {"chunked", chunked_nid, 1},
      {"inline", inline_nid, 1}, {"link", link_nid, 7}, {"plain", plain_nid, 1}};
  uint64_t name_at = entries.size() * 12;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& [name, nid, type] = entries[i];
    const uint64_t at = dir_block * bs + i * 12;
    put_le<uint64_t>(image, at, nid);
    put_le<uint16_t>(image, at + 8, static_cast<uint16_t>(name_at));
    image[at + 10] = static_cast<char>(type);
    image.replace(dir_block * bs + name_at, name.size(), name);
    name_at += name.size();
  }
  inode(root_nid, 0, S_IFDIR | 0755, static_cast<uint32_t>(name_at), static_cast<uint32_t>(dir_block));
  inode(plain_nid, 0, S_IFREG | 0644, static_cast<uint32_t>(plain.size()), static_cast<uint32_t>(data_block));
  image.replace(data_block * bs, plain.size(), plain);
  inode(inline_nid, 2, S_IFREG | 0644, static_cast<uint32_t>(tail_file.size()), kNullAddrForTests);
  image.replace(meta_base + inline_nid * 32 + 32, tail_file.size(), tail_file);
  // Chunked: block map with chunk = block; entries right after the inode.
  inode(chunked_nid, 4, S_IFREG | 0600, static_cast<uint32_t>(chunk_blocks * bs), 0);
  for (uint64_t c = 0; c < chunk_blocks; ++c) {
    const uint32_t addr = c == 1 ? 0xFFFFFFFF : static_cast<uint32_t>(chunk_data + c);
    put_le<uint32_t>(image, meta_base + chunked_nid * 32 + 32 + c * 4, addr);
    if (c != 1) image.replace((chunk_data + c) * bs, bs, std::string(bs, static_cast<char>('A' + c)));
  }
  inode(link_nid, 2, S_IFLNK | 0777, 6, 0);
  image.replace(meta_base + link_nid * 32 + 32, 6, "target");
  fix_checksum(image);
  return image;
}

TEST_F(ErofsImageTest, ReadsHandWrittenImagesOfEveryBlockSize) {
  for (unsigned bits = 9; bits <= 16; ++bits) {
    SCOPED_TRACE("block size 2^" + std::to_string(bits));
    const uint64_t bs = uint64_t{1} << bits;
    const std::string plain = random_bytes(2 * bs + 77, bits);
    const std::string tail = random_bytes(std::min<uint64_t>(bs / 4, 300), bits + 100);
    auto img = open_bytes(synthetic_image(bits, plain, tail));
    EXPECT_EQ(img->superblock().block_size, bs);
    Inode root = root_of(*img);
    auto names = list_dir(*img, root);
    ASSERT_EQ(names.size(), 6U);
    EXPECT_EQ(names[5].name, "plain");
    EXPECT_EQ(read_all(*img, resolve(*img, "/plain"), 100), plain);
    EXPECT_EQ(read_all(*img, resolve(*img, "/inline")), tail);
    EXPECT_EQ(must(img->read_link(resolve(*img, "/link"))), "target");
    Inode chunked = resolve(*img, "/chunked");
    EXPECT_EQ(read_all(*img, chunked), std::string(bs, 'A') + std::string(bs, '\0') + std::string(bs, 'C'));
    EXPECT_EQ(must(img->seek(chunked, 0, SEEK_HOLE)), bs);
    EXPECT_EQ(must(img->seek(chunked, bs, SEEK_DATA)), 2 * bs);
    EXPECT_EQ(resolve(*img, "/plain").mtime, 1111U);
  }
}

// ---- robustness sweeps -------------------------------------------------------------------------

class ErofsRobustnessTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    suite_dir = std::make_unique<TempDir>();
    const std::string src = *suite_dir / "src";
    fs::create_directories(src + "/sub/deeper");
    make_file(src + "/small", "small file");
    make_file(src + "/tail", random_bytes(5000, 20));
    make_file(src + "/sub/blocks", random_bytes(size_t{3} * 4096, 21));
    make_file(src + "/sub/deeper/x", "x");
    fs::create_symlink("small", src + "/link");
    for (int i = 0; i < 40; ++i) make_file(src + "/sub/f" + std::to_string(i), std::to_string(i));
    for (int i = 0; i < 3; ++i) {
      set_xattr(src + "/sub/f" + std::to_string(i), "user.shared", "shared value");
      set_xattr(src + "/sub/f" + std::to_string(i), "trusted.own", std::to_string(i));
    }
    ::mknod((src + "/dev").c_str(), S_IFCHR | 0600, makedev(5, 1));
    mkfs("", *suite_dir / "flat.erofs", src);
    mkfs("--chunksize=4096", *suite_dir / "chunk.erofs", src, *suite_dir / "chunk.blob");
  }
  static void TearDownTestSuite() { suite_dir.reset(); }

 protected:
  // Every answer a damaged image gives must either be an error or what the intact image says.
  static void expect_subset(const Transcript& damaged, const Transcript& intact) {
    for (const auto& [key, value] : damaged) {
      if (value.rfind("error", 0) == 0) continue;
      auto it = intact.find(key);
      if (it == intact.end()) continue;  // a path only a damaged directory leads to
      EXPECT_EQ(value, it->second) << key;
    }
  }
  static std::unique_ptr<TempDir> suite_dir;
};
std::unique_ptr<TempDir> ErofsRobustnessTest::suite_dir;

TEST_F(ErofsRobustnessTest, TruncatedImagesGiveErrorsOrCorrectAnswers) {
  for (const char* name : {"flat.erofs", "chunk.erofs"}) {
    const std::string image = read_file(*suite_dir / name);
    const std::string blob = std::string(name) == "chunk.erofs" ? read_file(*suite_dir / "chunk.blob") : "";
    const Transcript intact = transcript(*open_bytes(image, blob));
    std::vector<size_t> lengths;
    for (size_t n = 0; n < std::min<size_t>(image.size(), 12288); n += 97) lengths.push_back(n);
    for (size_t n = 12288; n < image.size(); n += 1021) lengths.push_back(n);
    for (size_t length : lengths) {
      SCOPED_TRACE(std::string(name) + " truncated to " + std::to_string(length));
      for (bool mapped : {true, false}) {
        auto img =
            ErofsImage::open(memory(image.substr(0, length), mapped), resolver_for(memory(blob, mapped)));
        if (!img.ok()) {
          EXPECT_TRUE(img.error().code == EIO || img.error().code == EOPNOTSUPP) << img.error().message;
          continue;
        }
        expect_subset(transcript(**img), intact);
      }
    }
    // A truncated blob: reads fail, metadata still answers.
    for (size_t length : {size_t{0}, blob.size() / 2}) {
      if (blob.empty()) break;
      auto img = ErofsImage::open(memory(image, true), resolver_for(memory(blob.substr(0, length), true)));
      ASSERT_TRUE(img.ok());
      expect_subset(transcript(**img), intact);
    }
  }
}

TEST_F(ErofsRobustnessTest, RandomCorruptionNeverCrashes) {
  std::mt19937 rng(42);
  size_t opened = 0;
  for (const char* name : {"flat.erofs", "chunk.erofs"}) {
    const std::string image = read_file(*suite_dir / name);
    const std::string blob = std::string(name) == "chunk.erofs" ? read_file(*suite_dir / "chunk.blob") : "";
    // Metadata sits in the first blocks; aim most flips there.
    const size_t hot = std::min<size_t>(image.size(), size_t{3} * 4096);
    for (int round = 0; round < 400; ++round) {
      std::string damaged = image;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < flips; ++k) {
        const size_t at = rng() % 4 == 0 ? rng() % damaged.size() : 1024 + rng() % (hot - 1024);
        damaged[at] = static_cast<char>(rng() % 3 == 0 ? 0xFF : rng() & 0xFFU);
      }
      if (rng() % 8 != 0) fix_checksum(damaged);  // let the damage past the checksum
      const bool mapped = round % 2 == 0;
      auto img = ErofsImage::open(memory(damaged, mapped), resolver_for(memory(blob, mapped)));
      if (!img.ok()) continue;
      ++opened;
      (void)transcript(**img, 200, 20000);
      // Poke at nids the tree does not lead to, as a stale or forged FUSE request would.
      for (uint64_t nid : {uint64_t{0}, uint64_t{1}, uint64_t{rng() % 4096}, UINT64_MAX, UINT64_MAX / 32}) {
        auto inode = (*img)->inode(nid);
        if (!inode.ok()) continue;
        std::string buf(4096, '\0');
        (void)(*img)->read(*inode, rng() % 10000, std::as_writable_bytes(std::span(buf)));
        (void)(*img)->lookup(*inode, "small");
        (void)(*img)->list_xattrs(*inode);
        (void)(*img)->seek(*inode, 0, SEEK_HOLE);
      }
    }
  }
  EXPECT_GT(opened, 200U)
      << "most damaged images should open, or the sweep tests nothing past the superblock";
}

TEST_F(ErofsRobustnessTest, ForgedInodesAreRejectedNotTrusted) {
  auto img = open_image(*suite_dir / "flat.erofs");
  Inode forged = resolve(*img, "/sub/blocks");
  std::string buf(4096, '\0');
  for (uint64_t size : {uint64_t{1} << 40, UINT64_MAX}) {
    forged.size = size;
    auto r = img->read(forged, size - 100, std::as_writable_bytes(std::span(buf)));
    ASSERT_FALSE(r.ok()) << size;
    EXPECT_EQ(r.error().code, EIO);
  }
  Inode dir = resolve(*img, "/sub");
  dir.size = UINT64_MAX;
  EXPECT_FALSE(img->read_dir(dir, 0, [](const DirEntry&) { return true; }).ok());
  dir.nid = UINT64_MAX;
  EXPECT_FALSE(img->lookup(dir, "x").ok());
  EXPECT_FALSE(img->inode(UINT64_MAX).ok());
}

}  // namespace
}  // namespace ferry::erofs
