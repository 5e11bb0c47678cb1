#include "e2e/tree_compare.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "e2e/fs_util.h"

namespace ferry::e2e {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kMiB = 1024 * 1024;

struct Entry {
  struct stat st {};
  int stat_errno = 0;
  unsigned char d_type = DT_UNKNOWN;  // as reported by the parent's readdir (root: unknown)
  std::string link_target;
  int link_errno = 0;
  std::map<std::string, std::string> xattrs;
  std::string xattr_error;
  // Directories only.
  bool has_dot = false;
  bool has_dotdot = false;
  int readdir_errno = 0;
  std::vector<std::string> duplicate_names;
};

using Tree = std::map<std::string, Entry>;  // relative path ("" = the root) -> entry

std::string join(const std::string& root, const std::string& rel) {
  return rel.empty() ? root : root + "/" + rel;
}

std::string display(const std::string& rel) {
  return rel.empty() ? "<root>" : printable(rel);
}

std::string type_name(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "regular file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return "char device";
    case S_IFBLK:
      return "block device";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    default:
      return "unknown type";
  }
}

std::string octal(unsigned v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0%o", v);
  return buf;
}

std::string time_text(const timespec& ts) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(ts.tv_sec), ts.tv_nsec);
  return buf;
}

std::string dev_text(dev_t d) {
  return std::to_string(major(d)) + ":" + std::to_string(minor(d));
}

void read_xattrs(const std::string& path, Entry* e) {
  std::string names;
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
    if (n < 0) {
      e->xattr_error = "llistxattr: " + errno_text(errno);
      return;
    }
    if (n == 0) return;  // the size query (size 0) says there are none
    names.resize(static_cast<size_t>(n));
    n = ::llistxattr(path.c_str(), names.data(), names.size());
    if (n < 0 && errno == ERANGE) continue;
    if (n < 0) {
      e->xattr_error = "llistxattr: " + errno_text(errno);
      return;
    }
    names.resize(static_cast<size_t>(n));
    break;
  }
  size_t pos = 0;
  while (pos < names.size()) {
    size_t end = names.find('\0', pos);
    if (end == std::string::npos) end = names.size();
    std::string name = names.substr(pos, end - pos);
    pos = end + 1;
    if (name.empty()) continue;
    if (e->xattrs.count(name) != 0) {
      e->xattr_error += "llistxattr lists " + printable(name) + " twice; ";
      continue;
    }
    std::string value;
    bool ok = false;
    for (int attempt = 0; attempt < 4 && !ok; ++attempt) {
      ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
      if (n < 0) break;
      value.resize(static_cast<size_t>(n));
      n = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
      if (n < 0 && errno == ERANGE) continue;
      if (n < 0) break;
      value.resize(static_cast<size_t>(n));
      ok = true;
    }
    if (!ok) {
      e->xattr_error += "lgetxattr " + printable(name) + ": " + errno_text(errno) + "; ";
      continue;
    }
    e->xattrs.emplace(std::move(name), std::move(value));
  }
}

void fill_entry(const std::string& path, Entry* e) {
  if (::lstat(path.c_str(), &e->st) != 0) {
    e->stat_errno = errno;
    return;
  }
  if (S_ISLNK(e->st.st_mode)) {
    std::string buf(8192, '\0');
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) {
      e->link_errno = errno;
    } else {
      buf.resize(static_cast<size_t>(n));
      e->link_target = std::move(buf);
    }
  }
  read_xattrs(path, e);
}

Tree scan(const std::string& root) {
  Tree tree;
  fill_entry(root, &tree[""]);
  std::vector<std::string> pending = {""};
  while (!pending.empty()) {
    const std::string rel = std::move(pending.back());
    pending.pop_back();
    Entry& dir_entry = tree[rel];
    if (dir_entry.stat_errno != 0 || !S_ISDIR(dir_entry.st.st_mode)) continue;
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(join(root, rel).c_str()), &::closedir);
    if (!dir) {
      dir_entry.readdir_errno = errno;
      continue;
    }
    std::vector<std::pair<std::string, unsigned char>> children;
    std::set<std::string> seen;
    while (true) {
      errno = 0;
      dirent* d = ::readdir(dir.get());
      if (d == nullptr) {
        if (errno != 0) dir_entry.readdir_errno = errno;
        break;
      }
      std::string name = d->d_name;
      if (!seen.insert(name).second) {
        dir_entry.duplicate_names.push_back(name);
        continue;
      }
      if (name == ".") {
        dir_entry.has_dot = true;
      } else if (name == "..") {
        dir_entry.has_dotdot = true;
      } else {
        children.emplace_back(std::move(name), d->d_type);
      }
    }
    dir.reset();
    for (auto& [name, d_type] : children) {
      const std::string child = rel.empty() ? name : rel + "/" + name;
      Entry& e = tree[child];
      e.d_type = d_type;
      fill_entry(join(root, child), &e);
      if (e.stat_errno == 0 && S_ISDIR(e.st.st_mode)) pending.push_back(child);
    }
  }
  return tree;
}

class Reporter {
 public:
  Reporter(CompareResult* result, size_t max) : result_(result), max_(max) {}
  void add(const std::string& rel, const std::string& what) {
    ++result_->total_differences;
    if (result_->differences.size() < max_) result_->differences.push_back(display(rel) + ": " + what);
  }

 private:
  CompareResult* result_;
  size_t max_;
};

// pread until `len` bytes, EOF or an error. Returns bytes read, or -errno.
int64_t read_full(int fd, char* buf, uint64_t len, uint64_t off) {
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    done += static_cast<uint64_t>(n);
  }
  return static_cast<int64_t>(done);
}

std::string read_result_text(int64_t r) {
  return r < 0 ? "error " + errno_text(static_cast<int>(-r)) : std::to_string(r) + " bytes";
}

// Compares the outcome of the same read on both sides; empty when identical.
std::string compare_reads(int64_t ra, const char* a, int64_t rb, const char* b, uint64_t off) {
  if (ra != rb) return "A returned " + read_result_text(ra) + ", B returned " + read_result_text(rb);
  if (ra <= 0) return {};
  const auto n = static_cast<size_t>(ra);
  if (std::memcmp(a, b, n) == 0) return {};
  size_t i = 0;
  while (a[i] == b[i]) ++i;
  char buf[128];
  std::snprintf(buf, sizeof buf, "first differing byte at file offset %llu: A=0x%02x B=0x%02x",
                static_cast<unsigned long long>(off + i), static_cast<unsigned char>(a[i]),
                static_cast<unsigned char>(b[i]));
  return buf;
}

std::string range_text(uint64_t off, uint64_t len) {
  return "[" + std::to_string(off) + ", +" + std::to_string(len) + ")";
}

class Comparer {
 public:
  Comparer(std::string a, std::string b, const CompareOptions& o)
      : root_a_(std::move(a)), root_b_(std::move(b)), opt_(o), rep_(&result_, o.max_differences) {}

  CompareResult run() {
    using Clock = std::chrono::steady_clock;
    auto ms = [](Clock::time_point since) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
    };
    auto t0 = Clock::now();
    Tree ta = scan(root_a_);
    Tree tb = scan(root_b_);
    result_.scan_ms = ms(t0);
    result_.entries = ta.size();
    compare_path_sets(ta, tb);
    std::vector<std::pair<std::string, uint64_t>> files;  // common regular files of equal size
    for (const auto& [rel, ea] : ta) {
      auto it = tb.find(rel);
      if (it == tb.end()) continue;
      if (compare_entry(rel, ea, it->second)) files.emplace_back(rel, static_cast<uint64_t>(ea.st.st_size));
    }
    compare_link_groups(ta, tb);
    result_.regular_files = files.size();
    t0 = Clock::now();
    for (const auto& [rel, size] : files) compare_content(rel, size);
    result_.content_ms = ms(t0);
    t0 = Clock::now();
    random_reads(files);
    direct_reads(files);
    result_.reads_ms = ms(t0);
    return std::move(result_);
  }

 private:
  void compare_path_sets(const Tree& ta, const Tree& tb) {
    report_only_in(ta, tb, "A");
    report_only_in(tb, ta, "B");
  }

  // Reports entries of `x` missing from `y`, collapsing everything below a missing directory.
  void report_only_in(const Tree& x, const Tree& y, const char* side) {
    std::map<std::string, size_t> below;  // top-most missing path -> entries under it
    for (const auto& [rel, e] : x) {
      if (y.count(rel) != 0) continue;
      std::string top = rel;
      for (size_t slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', slash + 1)) {
        std::string prefix = rel.substr(0, slash);
        if (y.count(prefix) == 0 && x.count(prefix) != 0) {
          top = prefix;
          break;
        }
      }
      if (top == rel) {
        below.emplace(rel, 0);
      } else {
        ++below[top];
      }
    }
    for (const auto& [rel, n] : below) {
      const Entry& e = x.at(rel);
      std::string what = std::string("only in ") + side + " (" +
                         (e.stat_errno != 0 ? "lstat failed" : type_name(e.st.st_mode)) + ")";
      if (n > 0) what += " with " + std::to_string(n) + " entries below it";
      rep_.add(rel, what);
    }
  }

  void check_num(const std::string& rel, const char* field, uint64_t a, uint64_t b) {
    if (a != b) rep_.add(rel, std::string(field) + ": A=" + std::to_string(a) + " B=" + std::to_string(b));
  }

  void check_dtype(const std::string& rel, const Entry& e, const char* side) {
    if (e.d_type == DT_UNKNOWN || rel.empty()) return;
    if (e.d_type != IFTODT(e.st.st_mode)) {
      rep_.add(rel, std::string("readdir d_type in ") + side + " is " + std::to_string(e.d_type) +
                        " but lstat says " + type_name(e.st.st_mode));
    }
  }

  // Compares metadata; returns true when both are regular files of the same size (content next).
  bool compare_entry(const std::string& rel, const Entry& a, const Entry& b) {
    if (a.stat_errno != 0 || b.stat_errno != 0) {
      if (a.stat_errno != b.stat_errno) {
        rep_.add(rel, "lstat: A=" + (a.stat_errno ? errno_text(a.stat_errno) : std::string("ok")) +
                          " B=" + (b.stat_errno ? errno_text(b.stat_errno) : std::string("ok")));
      }
      return false;
    }
    const mode_t ta = a.st.st_mode & S_IFMT;
    const mode_t tb = b.st.st_mode & S_IFMT;
    if (ta != tb) {
      rep_.add(rel, "type: A=" + type_name(a.st.st_mode) + " B=" + type_name(b.st.st_mode));
      return false;
    }
    const bool is_dir = S_ISDIR(a.st.st_mode);
    if (a.st.st_mode != b.st.st_mode) {
      rep_.add(rel, "mode: A=" + octal(a.st.st_mode) + " B=" + octal(b.st.st_mode));
    }
    check_num(rel, "uid", a.st.st_uid, b.st.st_uid);
    check_num(rel, "gid", a.st.st_gid, b.st.st_gid);
    if (!(is_dir && opt_.ignore_dir_size)) {
      check_num(rel, "size", static_cast<uint64_t>(a.st.st_size), static_cast<uint64_t>(b.st.st_size));
    }
    if (!opt_.ignore_mtime && !(is_dir && opt_.ignore_dir_mtime) &&
        !(rel.empty() && opt_.ignore_root_mtime)) {
      if (a.st.st_mtim.tv_sec != b.st.st_mtim.tv_sec || a.st.st_mtim.tv_nsec != b.st.st_mtim.tv_nsec) {
        rep_.add(rel, "mtime: A=" + time_text(a.st.st_mtim) + " B=" + time_text(b.st.st_mtim));
      }
    }
    if (!(is_dir && opt_.ignore_dir_nlink)) check_num(rel, "nlink", a.st.st_nlink, b.st.st_nlink);
    if (a.st.st_rdev != b.st.st_rdev) {
      rep_.add(rel, "rdev: A=" + dev_text(a.st.st_rdev) + " B=" + dev_text(b.st.st_rdev));
    }
    check_dtype(rel, a, "A");
    check_dtype(rel, b, "B");
    if (S_ISLNK(a.st.st_mode)) compare_symlink(rel, a, b);
    compare_xattrs(rel, a, b);
    if (is_dir) compare_dir(rel, a, b);
    return S_ISREG(a.st.st_mode) && a.st.st_size == b.st.st_size;
  }

  void compare_symlink(const std::string& rel, const Entry& a, const Entry& b) {
    if (a.link_errno != b.link_errno) {
      rep_.add(rel, "readlink: A=" + errno_text(a.link_errno) + " B=" + errno_text(b.link_errno));
      return;
    }
    if (a.link_target != b.link_target) {
      rep_.add(rel, "symlink target: A=\"" + printable(a.link_target, 80) + "\" (" +
                        std::to_string(a.link_target.size()) + " bytes) B=\"" + printable(b.link_target, 80) +
                        "\" (" + std::to_string(b.link_target.size()) + " bytes)");
    }
    for (const auto* e : {&a, &b}) {
      if (e->link_errno == 0 && static_cast<uint64_t>(e->st.st_size) != e->link_target.size()) {
        rep_.add(rel, std::string("symlink size in ") + (e == &a ? "A" : "B") + " is " +
                          std::to_string(e->st.st_size) + " but the target has " +
                          std::to_string(e->link_target.size()) + " bytes");
      }
    }
  }

  void compare_xattrs(const std::string& rel, const Entry& a, const Entry& b) {
    if (!a.xattr_error.empty() || !b.xattr_error.empty()) {
      rep_.add(rel, "xattr errors: A=\"" + a.xattr_error + "\" B=\"" + b.xattr_error + "\"");
    }
    for (const auto& [name, va] : a.xattrs) {
      auto it = b.xattrs.find(name);
      if (it == b.xattrs.end()) {
        rep_.add(rel, "xattr " + printable(name, 60) + " only in A");
      } else if (va != it->second) {
        rep_.add(rel, "xattr " + printable(name, 60) + " value: A=" + std::to_string(va.size()) +
                          " bytes \"" + printable(va, 40) + "\" B=" + std::to_string(it->second.size()) +
                          " bytes \"" + printable(it->second, 40) + "\"");
      }
    }
    for (const auto& [name, vb] : b.xattrs) {
      if (a.xattrs.count(name) == 0) rep_.add(rel, "xattr " + printable(name, 60) + " only in B");
    }
  }

  void compare_dir(const std::string& rel, const Entry& a, const Entry& b) {
    if (a.readdir_errno != b.readdir_errno) {
      rep_.add(rel, "readdir: A=" + errno_text(a.readdir_errno) + " B=" + errno_text(b.readdir_errno));
    }
    for (const auto* e : {&a, &b}) {
      for (const auto& dup : e->duplicate_names) {
        rep_.add(rel, std::string("readdir in ") + (e == &a ? "A" : "B") + " returned \"" + printable(dup) +
                          "\" more than once");
      }
    }
    if (!opt_.ignore_dot_entries) {
      if (a.has_dot != b.has_dot)
        rep_.add(rel, std::string("readdir \".\": A=") + (a.has_dot ? "yes" : "no") +
                          " B=" + (b.has_dot ? "yes" : "no"));
      if (a.has_dotdot != b.has_dotdot) {
        rep_.add(rel, std::string("readdir \"..\": A=") + (a.has_dotdot ? "yes" : "no") +
                          " B=" + (b.has_dotdot ? "yes" : "no"));
      }
    }
  }

  // The partition of paths by inode number must be the same in both trees.
  struct Groups {
    std::vector<std::vector<std::string>> groups;  // names sharing one st_ino, sorted
    std::map<std::string, size_t> of;              // name -> index into groups
  };

  static Groups link_groups(const Tree& t) {
    std::map<ino_t, std::vector<std::string>> by_ino;
    for (const auto& [rel, e] : t) {
      if (e.stat_errno == 0) by_ino[e.st.st_ino].push_back(rel);
    }
    Groups g;
    for (auto& [ino, names] : by_ino) {
      for (const auto& n : names) g.of[n] = g.groups.size();
      g.groups.push_back(std::move(names));
    }
    return g;
  }

  void compare_link_groups(const Tree& ta, const Tree& tb) {
    const Groups ga = link_groups(ta);
    const Groups gb = link_groups(tb);
    auto list = [](const std::vector<std::string>& g) {
      std::string s = "{";
      for (size_t i = 0; i < g.size() && i < 6; ++i) s += (i ? ", " : "") + display(g[i]);
      if (g.size() > 6) s += ", ... (" + std::to_string(g.size()) + " names)";
      return s + "}";
    };
    std::set<std::pair<size_t, size_t>> reported;
    for (const auto& [rel, ia] : ga.of) {
      auto it = gb.of.find(rel);
      if (it == gb.of.end()) continue;
      const auto& a = ga.groups[ia];
      const auto& b = gb.groups[it->second];
      if (a == b || !reported.emplace(ia, it->second).second) continue;
      rep_.add(rel, "hard-link group (paths sharing st_ino): A=" + list(a) + " B=" + list(b));
    }
  }

  struct FilePair {
    UniqueFd a;
    UniqueFd b;
    std::string error;
  };

  FilePair open_pair(const std::string& rel, int extra_flags) {
    FilePair p;
    p.a = UniqueFd(::open(join(root_a_, rel).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | extra_flags));
    int ea = p.a.valid() ? 0 : errno;
    p.b = UniqueFd(::open(join(root_b_, rel).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | extra_flags));
    int eb = p.b.valid() ? 0 : errno;
    if (ea != 0 || eb != 0) {
      p.error = "A " + (ea ? errno_text(ea) : std::string("ok")) + ", B " +
                (eb ? errno_text(eb) : std::string("ok"));
      if (ea == eb) p.error.clear();  // the same refusal on both sides is not a difference
      p.a.reset();
      p.b.reset();
    }
    return p;
  }

  void compare_content(const std::string& rel, uint64_t size) {
    FilePair p = open_pair(rel, 0);
    if (!p.error.empty()) {
      rep_.add(rel, "open: " + p.error);
      return;
    }
    if (!p.a.valid()) return;
    std::string ba(kMiB, '\0');
    std::string bb(kMiB, '\0');
    for (uint64_t off = 0; off <= size; off += kMiB) {
      // The last round reads past EOF: both sides must then return exactly the remaining bytes.
      int64_t ra = read_full(p.a.get(), ba.data(), kMiB, off);
      int64_t rb = read_full(p.b.get(), bb.data(), kMiB, off);
      std::string diff = compare_reads(ra, ba.data(), rb, bb.data(), off);
      if (!diff.empty()) {
        rep_.add(rel, "content " + range_text(off, kMiB) + ": " + diff);
        return;
      }
      const uint64_t expect = std::min<uint64_t>(kMiB, size - off);
      if (static_cast<uint64_t>(ra) != expect) {
        rep_.add(rel, "content " + range_text(off, kMiB) + ": both returned " + read_result_text(ra) +
                          " but st_size " + std::to_string(size) + " implies " + std::to_string(expect));
        return;
      }
      result_.bytes_compared += expect;
    }
  }

  static std::vector<std::pair<uint64_t, uint64_t>> read_plan(Rng& rng, uint64_t size, int count) {
    std::vector<std::pair<uint64_t, uint64_t>> plan;
    auto around = [&](uint64_t unit, uint64_t back_max, uint64_t len_max) {
      if (size <= unit) return;
      uint64_t k = rng.range(1, size / unit);
      uint64_t off = k * unit;
      off -= std::min(off, rng.range(1, back_max));
      plan.emplace_back(off, rng.range(2, len_max));
    };
    for (int i = 0; i < count; ++i) {
      switch (rng.below(7)) {
        case 0: {  // anywhere
          uint64_t off = rng.below(size);
          plan.emplace_back(off, rng.range(1, std::min<uint64_t>(size - off + kBlock, 300000)));
          break;
        }
        case 1:
          around(kBlock, 300, 9000);
          break;
        case 2:
          around(65536, 5000, 20000);
          break;
        case 3:
          around(kMiB, 5000, 70000);
          break;
        case 4: {  // across EOF
          uint64_t back = std::min<uint64_t>(size, rng.range(0, 5000));
          plan.emplace_back(size - back, rng.range(1, 10000));
          break;
        }
        case 5:
          plan.emplace_back(size + rng.range(0, 10000), rng.range(1, 4096));
          break;    // past EOF
        default: {  // block-aligned, a few blocks
          uint64_t off = rng.below(size / kBlock + 1) * kBlock;
          plan.emplace_back(off, kBlock * rng.range(1, 4));
          break;
        }
      }
    }
    if (size >= kMiB) plan.emplace_back(rng.below(size), kMiB + 17);
    return plan;
  }

  void random_reads(const std::vector<std::pair<std::string, uint64_t>>& files) {
    const size_t stride =
        opt_.max_random_read_files == 0 ? 0 : std::max<size_t>(1, files.size() / opt_.max_random_read_files);
    std::string ba;
    std::string bb;
    for (size_t i = 0; i < files.size(); ++i) {
      const auto& [rel, size] = files[i];
      const bool large = size >= kMiB;
      if (!large && (stride == 0 || i % stride != 0)) continue;
      Rng rng(opt_.seed ^ std::hash<std::string>{}(rel));
      const auto plan =
          read_plan(rng, size, large ? opt_.random_reads_large_file : opt_.random_reads_per_file);
      FilePair p = open_pair(rel, 0);
      if (!p.a.valid()) continue;  // already reported by the content comparison
      for (const auto& [off, len] : plan) {
        ba.resize(len);
        bb.resize(len);
        int64_t ra = read_full(p.a.get(), ba.data(), len, off);
        int64_t rb = read_full(p.b.get(), bb.data(), len, off);
        ++result_.random_reads;
        std::string diff = compare_reads(ra, ba.data(), rb, bb.data(), off);
        if (!diff.empty()) {
          rep_.add(rel, "random pread " + range_text(off, len) + ": " + diff);
          break;  // one per file is enough
        }
      }
    }
  }

  struct Aligned {
    explicit Aligned(size_t len) : p(static_cast<char*>(std::aligned_alloc(kBlock, len)), &std::free) {}
    std::unique_ptr<char, void (*)(void*)> p;
  };

  void direct_reads(std::vector<std::pair<std::string, uint64_t>> files) {
    if (opt_.direct_io_files <= 0) return;
    std::erase_if(files, [](const auto& f) { return f.second == 0; });
    if (files.empty()) return;
    std::stable_sort(files.begin(), files.end(),
                     [](const auto& x, const auto& y) { return x.second < y.second; });
    std::set<size_t> picks = {0, files.size() - 1};
    const auto n = static_cast<size_t>(opt_.direct_io_files);
    for (size_t i = 1; picks.size() < n && i < n; ++i) picks.insert(i * (files.size() - 1) / (n - 1));
    for (size_t idx : picks) direct_read_file(files[idx].first, files[idx].second);
  }

  void direct_read_file(const std::string& rel, uint64_t size) {
    FilePair p = open_pair(rel, O_DIRECT);
    if (!p.error.empty()) {
      rep_.add(rel, "open(O_DIRECT): " + p.error);
      return;
    }
    if (!p.a.valid()) return;
    FilePair buffered = open_pair(rel, 0);
    if (!buffered.a.valid()) return;
    const uint64_t rounded = (size + kBlock - 1) / kBlock * kBlock;
    std::vector<std::pair<uint64_t, uint64_t>> plan = {{0, std::min<uint64_t>(rounded, kMiB)},
                                                       {(size - 1) / kBlock * kBlock, 2 * kBlock}};
    if (size > 65536) plan.emplace_back(65536 - kBlock, 2 * kBlock);
    if (size > kMiB) plan.emplace_back(kMiB - kBlock, 4 * kBlock);
    if (size > 2 * kBlock) plan.emplace_back(size / 2 / kBlock * kBlock, 3 * kBlock);
    for (const auto& [off, len] : plan) {
      Aligned da(len);
      Aligned db(len);
      std::string ref(len, '\0');
      int64_t ra = read_full(p.a.get(), da.p.get(), len, off);
      int64_t rb = read_full(p.b.get(), db.p.get(), len, off);
      int64_t rr = read_full(buffered.a.get(), ref.data(), len, off);
      ++result_.direct_reads;
      std::string diff = compare_reads(ra, da.p.get(), rb, db.p.get(), off);
      if (diff.empty()) diff = compare_reads(rr, ref.data(), rb, db.p.get(), off);
      if (!diff.empty()) {
        rep_.add(rel, "O_DIRECT pread " + range_text(off, len) + ": " + diff);
        return;
      }
    }
  }

  std::string root_a_;
  std::string root_b_;
  CompareOptions opt_;
  CompareResult result_;
  Reporter rep_;
};

}  // namespace

std::string CompareResult::report() const {
  std::string out;
  for (const auto& d : differences) out += d + "\n";
  if (total_differences > differences.size()) {
    out += "... and " + std::to_string(total_differences - differences.size()) + " more differences\n";
  }
  return out + summary() + "\n";
}

std::string CompareResult::summary() const {
  return std::to_string(total_differences) + " differences; compared " + std::to_string(entries) +
         " entries, " + std::to_string(regular_files) + " regular files, " + std::to_string(bytes_compared) +
         " bytes, " + std::to_string(random_reads) + " random reads, " + std::to_string(direct_reads) +
         " O_DIRECT reads (scan " + std::to_string(scan_ms) + " ms, content " + std::to_string(content_ms) +
         " ms, reads " + std::to_string(reads_ms) + " ms)";
}

CompareResult compare_trees(const std::string& a, const std::string& b, const CompareOptions& options) {
  Comparer c(a, b, options);
  return c.run();
}

}  // namespace ferry::e2e
