#include "e2e/tree_builder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "e2e/fs_util.h"

namespace ferry::e2e {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw std::runtime_error("build_tree: " + what + " " + printable(path, 400) + ": " + errno_text(err));
}

enum class Kind { kDir, kFile, kSymlink, kSpecial };

// Metadata applied after every entry exists, so creating entries cannot disturb it.
struct Meta {
  std::string rel;
  Kind kind = Kind::kFile;
  mode_t perm = 0644;  // ignored for symlinks
  uid_t uid = 0;
  gid_t gid = 0;
  timespec mtime{};
  std::vector<std::pair<std::string, std::string>> xattrs;
};

class Builder {
 public:
  Builder(std::string root, const TreeSpec& spec) : root_(std::move(root)), spec_(spec), rng_(spec.seed) {}

  TreeStats run() {
    Meta& r = dir("", 0755);
    r.uid = 0;
    r.gid = 0;
    r.xattrs.emplace_back("user.root_note", "the root of the ferry e2e tree");
    build_sizes();
    build_large();
    build_dedup();
    build_sparse();
    build_empty();
    build_deep();
    build_big_dir();
    build_names();
    build_links();
    build_hardlinks();
    build_special();
    build_xattrs();
    build_modes();
    build_owners();
    build_times();
    // Metadata last, children before parents (setting it never touches another entry's mtime,
    // but this order also keeps it right if that ever changes).
    for (auto it = metas_.rbegin(); it != metas_.rend(); ++it) apply(*it);
    return stats_;
  }

 private:
  [[nodiscard]] std::string abs(const std::string& rel) const {
    return rel.empty() ? root_ : root_ + "/" + rel;
  }

  Meta& record(const std::string& rel, Kind kind, mode_t perm) {
    Meta& m = metas_.emplace_back();
    m.rel = rel;
    m.kind = kind;
    m.perm = perm;
    randomize(m);
    ++stats_.entries;
    switch (kind) {
      case Kind::kDir:
        ++stats_.directories;
        break;
      case Kind::kFile:
        ++stats_.regular_files;
        break;
      case Kind::kSymlink:
        ++stats_.symlinks;
        break;
      case Kind::kSpecial:
        ++stats_.specials;
        break;
    }
    return m;
  }

  void randomize(Meta& m) {
    static constexpr uint32_t kIds[] = {1, 2, 100, 1000, 1001, 65534, 65535, 65536, 100000, 4000000};
    if (rng_.chance(2, 5)) {
      m.uid = kIds[rng_.below(std::size(kIds))];
      m.gid = kIds[rng_.below(std::size(kIds))];
    }
    m.mtime.tv_sec = static_cast<time_t>(rng_.range(946684800, 1900000000));
    m.mtime.tv_nsec = static_cast<long>(rng_.below(1000000000));
  }

  Meta& dir(const std::string& rel, mode_t perm = 0755) {
    if (::mkdir(abs(rel).c_str(), 0700) != 0) fail("mkdir", abs(rel), errno);
    return record(rel, Kind::kDir, perm);
  }

  static void write_all(int fd, const std::string& path, const char* data, size_t len, uint64_t off) {
    while (len > 0) {
      ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("pwrite", path, errno);
      data += n;
      len -= static_cast<size_t>(n);
      off += static_cast<uint64_t>(n);
    }
  }

  UniqueFd create(const std::string& rel) {
    UniqueFd fd(::open(abs(rel).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) fail("create", abs(rel), errno);
    return fd;
  }

  // A regular file of `size` random bytes drawn from a stream seeded from the tree's seed.
  Meta& file(const std::string& rel, uint64_t size, mode_t perm = 0644) {
    Rng content(rng_.next());
    UniqueFd fd = create(rel);
    std::string buf;
    for (uint64_t off = 0; off < size;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(size - off, kMiB));
      buf.resize(n);
      content.fill(buf.data(), n);
      write_all(fd.get(), abs(rel), buf.data(), n, off);
      off += n;
    }
    stats_.content_bytes += size;
    return record(rel, Kind::kFile, perm);
  }

  Meta& file_content(const std::string& rel, std::string_view data, mode_t perm = 0644) {
    UniqueFd fd = create(rel);
    write_all(fd.get(), abs(rel), data.data(), data.size(), 0);
    stats_.content_bytes += data.size();
    return record(rel, Kind::kFile, perm);
  }

  // A file of apparent `size` whose only data are random bytes in `ranges` ([begin, end)).
  Meta& sparse(const std::string& rel, uint64_t size,
               const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
    UniqueFd fd = create(rel);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) fail("ftruncate", abs(rel), errno);
    for (const auto& [begin, end] : ranges) {
      std::string data = rng_.bytes(static_cast<size_t>(end - begin));
      write_all(fd.get(), abs(rel), data.data(), data.size(), begin);
    }
    stats_.content_bytes += size;
    return record(rel, Kind::kFile, 0644);
  }

  Meta& symlink(const std::string& rel, const std::string& target) {
    if (::symlink(target.c_str(), abs(rel).c_str()) != 0) fail("symlink", abs(rel), errno);
    return record(rel, Kind::kSymlink, 0777);
  }

  Meta& special(const std::string& rel, mode_t type, dev_t dev, mode_t perm = 0644) {
    if (::mknod(abs(rel).c_str(), type | 0600, dev) != 0) fail("mknod", abs(rel), errno);
    return record(rel, Kind::kSpecial, perm);
  }

  // Adds another name for `existing` (metadata stays that of the first name).
  void hardlink(const std::string& existing, const std::string& rel) {
    if (::link(abs(existing).c_str(), abs(rel).c_str()) != 0) fail("link", abs(rel), errno);
    ++stats_.entries;
    ++stats_.extra_hard_links;
    struct stat st {};
    if (::lstat(abs(rel).c_str(), &st) != 0) fail("lstat", abs(rel), errno);
    if (S_ISREG(st.st_mode)) {
      ++stats_.regular_files;
    } else if (S_ISLNK(st.st_mode)) {
      ++stats_.symlinks;
    } else {
      ++stats_.specials;
    }
  }

  void apply(const Meta& m) {
    const std::string path = abs(m.rel);
    for (const auto& [name, value] : m.xattrs) {
      if (::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
        fail("lsetxattr " + name + " on", path, errno);
      }
    }
    if (::lchown(path.c_str(), m.uid, m.gid) != 0) fail("lchown", path, errno);
    if (m.kind != Kind::kSymlink && ::chmod(path.c_str(), m.perm) != 0) fail("chmod", path, errno);
    const timespec times[2] = {m.mtime, m.mtime};
    if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) fail("utimensat", path, errno);
  }

  // --- sections -------------------------------------------------------------------------------

  // Sizes at and around 512-byte, 4 KiB block and 64 KiB / 1 MiB chunk boundaries.
  void build_sizes() {
    dir("sizes");
    static constexpr uint64_t kSizes[] = {0,           1,      2,        3,     511,      512,
                                          513,         4095,   4096,     4097,  8191,     8192,
                                          8193,        12288,  65535,    65536, 65537,    131071,
                                          131072,      131073, kMiB - 1, kMiB,  kMiB + 1, 2 * kMiB + 4097,
                                          3 * kMiB - 1};
    for (uint64_t s : kSizes) file("sizes/size_" + std::to_string(s), s);
  }

  void build_large() {
    dir("large");
    file(tree_paths::kLargeFile, spec_.large_file_size);
  }

  // Repeated content, so chunk-deduplicating layouts (--chunksize, --blobdev) share chunks.
  void build_dedup() {
    dir("dedup");
    const std::string same = rng_.bytes(300000);
    file_content("dedup/copy_a", same);
    file_content("dedup/copy_b", same);
    const std::string block64k = rng_.bytes(64 * kKiB);
    std::string rep;
    for (int i = 0; i < 8; ++i) rep += block64k;
    rep += rng_.bytes(100);
    file_content("dedup/repeat_64k", rep);
    const std::string block4k = rng_.bytes(4 * kKiB);
    rep.clear();
    for (int i = 0; i < 40; ++i) rep += block4k;
    file_content("dedup/repeat_4k", rep);
    const std::string block1m = rng_.bytes(kMiB);
    file_content("dedup/repeat_1m", block1m + block1m + block4k);
    file_content("dedup/zeros", std::string(2 * kMiB + 3, '\0'));
  }

  void build_sparse() {
    dir("sparse");
    const uint64_t s = spec_.sparse_file_size;
    sparse("sparse/hole_start", s, {{s - 300000, s}});
    sparse("sparse/hole_middle", s, {{0, 70001}, {s - 100000, s}});
    sparse("sparse/hole_end", s, {{0, 5000}});
    sparse("sparse/all_hole", s + 1, {});
    sparse("sparse/chunk_holes", s + kMiB, {{kMiB, kMiB + 65536}, {s - 4096, s + 4096}});
    sparse("sparse/tiny_hole", 10000, {{9000, 10000}});
  }

  void build_empty() {
    dir("empty");
    file_content("empty/file", "");
    dir("empty/dir");
    dir("empty/nested");
    dir("empty/nested/a");
    dir("empty/nested/a/b");
    dir("empty/nested/a/b/c");
    file_content("empty/file_with_xattr", "").xattrs.emplace_back("user.note", "empty but annotated");
    dir("empty/dir_with_xattr").xattrs.emplace_back("trusted.note", "empty dir, annotated");
  }

  void build_deep() {
    std::string rel = "deep";
    dir(rel);
    for (int level = 0; level < spec_.deep_levels; ++level) {
      char name[64];
      std::snprintf(name, sizeof name, "level_%02d_", level);
      rel += "/" + std::string(name) + std::string(30, static_cast<char>('a' + level % 26));
      dir(rel);
      file(rel + "/f_" + std::to_string(level), static_cast<uint64_t>(level) * 97 + 1);
    }
    file(rel + "/bottom.txt", 4097);
    std::string up;
    for (int level = 0; level <= spec_.deep_levels; ++level) up += "../";
    symlink(rel + "/to_top", up + "sizes/size_1");
  }

  // One directory with many entries of varied name lengths: spans many directory blocks.
  void build_big_dir() {
    const std::string base = tree_paths::kBigDir;
    dir(base);
    std::string last_file;
    for (int i = 0; i < spec_.big_dir_entries; ++i) {
      char prefix[32];
      std::snprintf(prefix, sizeof prefix, "e%05d_", i);
      const std::string rel = base + "/" + prefix + rng_.word(rng_.below(81));
      const uint64_t pick = rng_.below(1000);
      if (pick < 30) {
        dir(rel);
        if (pick < 10) file(rel + "/inner", rng_.below(100));
      } else if (pick < 80 && !last_file.empty()) {
        symlink(rel, last_file.substr(base.size() + 1));
      } else if (pick < 90) {
        special(rel, S_IFIFO, 0);
      } else {
        uint64_t size = rng_.chance(3, 10) ? 0 : rng_.range(1, 400);
        if (pick >= 995) size = rng_.range(4000, 70000);
        Meta& m = file(rel, size);
        if (i % 7 == 0) m.xattrs.emplace_back("user.bigdir", "one value shared by many inodes");
        if (i % 50 == 0) m.xattrs.emplace_back("trusted.bigdir_1k", std::string(1024, 'k'));
        last_file = rel;
      }
    }
  }

  void build_names() {
    dir("names");
    auto small = [&](const std::string& name) { file("names/" + name, rng_.below(64)); };
    std::string ascii254 = "ascii_254_";
    ascii254.resize(254, 'x');
    small(ascii254);
    std::string e_acute;
    for (int i = 0; i < 127; ++i) e_acute += "\xc3\xa9";  // U+00E9, 2 bytes each: 254 bytes
    small(e_acute);
    std::string cjk;
    for (int i = 0; i < 84; ++i) cjk += "\xe6\x97\xa5";  // U+65E5, 3 bytes each: 252 bytes
    small(cjk + "ab");
    std::string dir254 = "dir_254_";
    dir254.resize(254, 'd');
    dir("names/" + dir254);
    std::string inner254 = "inner_254_";
    inner254.resize(254, 'i');
    small(dir254 + "/" + inner254);
    for (const char* name : {"\xc3\xbcmlaut",
                             "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                             "\xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd",
                             "\xd0\x9a\xd0\xb8\xd1\x80\xd0\xb8\xd0\xbb\xd0\xbb\xd0\xb8\xd1\x86\xd0\xb0",
                             "emoji_\xf0\x9f\x9a\x80\xf0\x9f\x8e\x89",
                             "latin1_\xe9t\xe9",
                             "new\nline",
                             "tab\tname",
                             "back\\slash",
                             "quote'\"s",
                             "star*?[]",
                             "colon:semi;",
                             " leading space",
                             "trailing space ",
                             "...",
                             ".hidden",
                             "-dash",
                             "#hash",
                             "%percent",
                             "=equals",
                             "a"}) {
      small(name);
    }
    dir("names/\xe7\x9b\xae\xe5\xbd\x95");  // U+76EE U+5F55
    small("\xe7\x9b\xae\xe5\xbd\x95/\xe6\x96\x87\xe4\xbb\xb6\x31");
    small("\xe7\x9b\xae\xe5\xbd\x95/\xe3\x83\x95\xe3\x82\xa1\xe3\x82\xa4\xe3\x83\xab\x32");
  }

  static std::string long_target(size_t len) {
    std::string t;
    for (int i = 0; t.size() < len; ++i) t += "component_" + std::to_string(i) + "/";
    t.resize(len);
    return t;
  }

  void build_links() {
    dir("links");
    symlink(tree_paths::kSymlink, "../sizes/size_4096");
    symlink("links/relative_dir", "../deep");
    symlink("links/dot", ".");
    symlink("links/dotdot", "..");
    symlink("links/absolute", "/etc/passwd");
    symlink("links/absolute_missing", "/nonexistent/ferry/target");
    symlink("links/dangling", "no_such_file");
    symlink("links/loop_a", "loop_b");
    symlink("links/loop_b", "loop_a");
    symlink("links/self", "self");
    symlink("links/utf8_target", "../names/\xc3\xbcmlaut");
    symlink("links/with_xattr", "target").xattrs = {{"trusted.sym", "on a symlink"},
                                                    {"security.ferry_sym", "s"}};
    for (size_t len : {1, 59, 60, 61, 255, 256, 1023, 2048, 3000, 4000, 4094, 4095}) {
      symlink("links/long_" + std::to_string(len), long_target(len));
    }
  }

  void build_hardlinks() {
    dir("hardlinks");
    dir("hardlinks/sub1");
    dir("hardlinks/sub2");
    dir("hardlinks/sub2/deeper");
    file(tree_paths::kHardPairA, 5000);
    hardlink(tree_paths::kHardPairA, tree_paths::kHardPairB);
    file("hardlinks/tri_a", 70000);
    hardlink("hardlinks/tri_a", "hardlinks/sub1/tri_b");
    hardlink("hardlinks/tri_a", "hardlinks/sub2/deeper/tri_c");
    file("hardlinks/big_a", kMiB + 4097);
    hardlink("hardlinks/big_a", "large/big_link");
    file_content("hardlinks/empty_a", "");
    hardlink("hardlinks/empty_a", "empty/empty_link");
    symlink("hardlinks/symlink_a", "pair_a");
    hardlink("hardlinks/symlink_a", "hardlinks/symlink_b");
    special("hardlinks/fifo_a", S_IFIFO, 0);
    hardlink("hardlinks/fifo_a", "hardlinks/fifo_b");
    special("hardlinks/chr_a", S_IFCHR, makedev(1, 5));
    hardlink("hardlinks/chr_a", "hardlinks/sub1/chr_b");
    file("hardlinks/xattr_a", 300).xattrs = {{"user.linked", "shared by three names"},
                                             {"trusted.linked", std::string(700, 't')}};
    hardlink("hardlinks/xattr_a", "hardlinks/xattr_b");
    hardlink("hardlinks/xattr_a", "hardlinks/sub2/xattr_c");
  }

  void build_special() {
    dir("special");
    special(tree_paths::kCharDevice, S_IFCHR, makedev(1, 3), 0666);
    special("special/chr_zero_zero", S_IFCHR, makedev(0, 0), 0000);
    special("special/chr_big", S_IFCHR, makedev(4095, 1048575), 0600);
    special("special/blk_loop", S_IFBLK, makedev(7, 100), 0660);
    special("special/blk_sda", S_IFBLK, makedev(8, 0), 0640);
    special("special/blk_big", S_IFBLK, makedev(259, 65536), 0600);
    special(tree_paths::kFifo, S_IFIFO, 0, 0644);
    special("special/fifo_0000", S_IFIFO, 0, 0000);
    special("special/fifo_xattr", S_IFIFO, 0, 0620).xattrs.emplace_back("trusted.fifo", "on a fifo");
    special("special/sock", S_IFSOCK, 0, 0755);
    special("special/sock_0777", S_IFSOCK, 0, 0777).xattrs.emplace_back("security.ferry_sock", "sock");
  }

  void build_xattrs() {
    dir("xattrs");
    file(tree_paths::kSmallXattrFile, 10).xattrs = {{"user.a", "1"}};
    file("xattrs/x_1k", 100).xattrs = {{"user.v1k", rng_.bytes(1024)}};
    file("xattrs/x_2k", 100).xattrs = {{"trusted.v2k", rng_.bytes(2048)}};
    file("xattrs/x_3k", 100).xattrs = {{"security.ferry_v3k", rng_.bytes(3000)}};
    file("xattrs/x_mix", 4096).xattrs = {{"user.a", rng_.bytes(100)},
                                         {"trusted.b", rng_.bytes(1500)},
                                         {"security.ferry_c", "c"},
                                         {"user.empty", ""}};
    Meta& many = file("xattrs/x_many", 1);
    for (int i = 0; i < 40; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "user.k%02d", i);
      many.xattrs.emplace_back(name, rng_.word(rng_.range(1, 40)));
    }
    file("xattrs/x_longname", 1).xattrs = {{"user." + std::string(250, 'n'), "v"}};
    file("xattrs/x_binary", 1).xattrs = {{"user.bin", std::string("\0\1\2\0\xff\xfe", 6) + rng_.bytes(58)}};
    dir("xattrs/x_dir").xattrs = {{"user.dirattr", "on a directory"}, {"trusted.dirattr", rng_.bytes(500)}};
    special("xattrs/x_chr", S_IFCHR, makedev(10, 200)).xattrs = {{"security.ferry_dev", "on a device"}};
    // The same name=value on many inodes: mkfs.erofs moves such xattrs to the shared table.
    dir("xattrs/shared");
    const std::string shared1k = rng_.bytes(1024);
    const std::string shared2k = rng_.bytes(2048);
    for (int i = 0; i < 60; ++i) {
      Meta& m = file("xattrs/shared/f" + std::to_string(i), rng_.below(5000));
      m.xattrs = {{"user.shared", "one value many inodes"},
                  {"trusted.shared_1k", shared1k},
                  {"user.unique", "file " + std::to_string(i)}};
      if (i < 20) m.xattrs.emplace_back("security.ferry_shared_2k", shared2k);
    }
  }

  void build_modes() {
    dir("modes");
    for (mode_t perm : {00000, 00777, 04755, 02755, 06755, 01755, 07777, 00444, 00111, 00640, 00600, 04000,
                        02000, 01000, 00644}) {
      char name[16];
      std::snprintf(name, sizeof name, "m%04o", static_cast<unsigned>(perm));
      file("modes/" + std::string(name), rng_.below(3000), perm);
    }
    dir("modes/d1777", 01777);
    file("modes/d1777/inside", 10);
    dir("modes/d0000", 00000);
    file("modes/d0000/inside", 10);
    dir("modes/d0000/subdir", 0755);
    dir("modes/d0555", 00555);
    dir("modes/d2775", 02775);
    dir("modes/d0700", 00700);
  }

  void build_owners() {
    dir("owners");
    static constexpr std::pair<uint32_t, uint32_t> kOwners[] = {{0, 0},
                                                                {1, 1},
                                                                {1000, 1000},
                                                                {65534, 65534},
                                                                {65535, 65535},
                                                                {65536, 65536},
                                                                {70000, 80000},
                                                                {1000000, 2000000},
                                                                {2147483647, 2147483646},
                                                                {4294967294U, 4294967294U},
                                                                {0, 65537},
                                                                {65537, 0}};
    for (const auto& [uid, gid] : kOwners) {
      Meta& m = file("owners/own_" + std::to_string(uid) + "_" + std::to_string(gid), rng_.below(100));
      m.uid = uid;
      m.gid = gid;
    }
    Meta& d = dir("owners/dir_70000");
    d.uid = 70000;
    d.gid = 70001;
    Meta& l = symlink("owners/link_65536", "own_0_0");
    l.uid = 65536;
    l.gid = 100000;
  }

  void build_times() {
    dir("times");
    static constexpr std::pair<int64_t, long> kTimes[] = {
        {0, 0},
        {0, 999999999},
        {-1, 500000000},
        {-2147483648LL, 1},
        {2147483647, 999999999},
        {2147483648LL, 0},
        {4102444800LL, 123456789},
        {4294967296LL + 7, 7},
        {10000000000LL, 1},
        {1700000000, 1},
    };
    int i = 0;
    for (const auto& [sec, nsec] : kTimes) {
      Meta& m = file("times/t" + std::to_string(i++), rng_.below(50));
      m.mtime.tv_sec = static_cast<time_t>(sec);
      m.mtime.tv_nsec = nsec;
    }
    Meta& d = dir("times/dir_epoch");
    d.mtime = {0, 0};
    Meta& l = symlink("times/link_pre_epoch", "t0");
    l.mtime = {-100, 42};
  }

  std::string root_;
  TreeSpec spec_;
  Rng rng_;
  std::deque<Meta> metas_;
  TreeStats stats_;
};

}  // namespace

TreeStats build_tree(const std::string& root, const TreeSpec& spec) {
  Builder b(root, spec);
  return b.run();
}

}  // namespace ferry::e2e
