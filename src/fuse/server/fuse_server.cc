#include "fuse/server/fuse_server.h"

#include <sys/sysmacros.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>

namespace ferry::fuse {

struct FuseServer::Request {
  fuse_in_header in{};
  std::span<const std::byte> args;
  std::span<std::byte> scratch;
  ReplyWriter* out = nullptr;
  RequestContext ctx;
  bool replied = false;
  int error = 0;       // errno of the reply, 0 = success
  uint64_t bytes = 0;  // payload bytes of a successful reply
};

namespace {

constexpr size_t kOutHeader = sizeof(fuse_out_header);

template <typename T>
T load_arg(std::span<const std::byte> args, size_t offset = 0) {
  T v{};
  if (offset < args.size()) std::memcpy(&v, args.data() + offset, std::min(sizeof(T), args.size() - offset));
  return v;
}

// A NUL-terminated name inside the arguments, or nullopt when it is not terminated in bounds.
std::optional<std::string_view> arg_name(std::span<const std::byte> args, size_t offset) {
  if (offset >= args.size()) return std::nullopt;
  const char* s = reinterpret_cast<const char*>(args.data() + offset);  // NOLINT: byte view of chars
  const void* nul = std::memchr(s, 0, args.size() - offset);
  if (nul == nullptr) return std::nullopt;
  return std::string_view(s, static_cast<size_t>(static_cast<const char*>(nul) - s));
}

void split_timeout(double seconds, uint64_t& sec, uint32_t& nsec) {
  if (!(seconds > 0)) {
    sec = 0;
    nsec = 0;
    return;
  }
  double whole = std::floor(seconds);
  sec = static_cast<uint64_t>(whole);
  nsec = static_cast<uint32_t>((seconds - whole) * 1e9);
}

uint32_t encode_rdev(dev_t dev) {
  // fuse_attr.rdev uses the kernel's new_encode_dev layout.
  uint32_t ma = major(dev);
  uint32_t mi = minor(dev);
  return (mi & 0xFFU) | (ma << 8U) | ((mi & ~0xFFU) << 12U);
}

void fill_attr(const struct stat& st, fuse_attr& a) {
  a.ino = st.st_ino;
  a.size = static_cast<uint64_t>(st.st_size);
  a.blocks = static_cast<uint64_t>(st.st_blocks);
  a.atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a.mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a.ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a.atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a.mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a.ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a.mode = st.st_mode;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = encode_rdev(st.st_rdev);
  a.blksize = static_cast<uint32_t>(st.st_blksize);
  a.flags = 0;
}

void fill_entry(const Entry& e, fuse_entry_out& o) {
  o.nodeid = e.nodeid;
  o.generation = e.generation;
  split_timeout(e.entry_timeout, o.entry_valid, o.entry_valid_nsec);
  split_timeout(e.attr_timeout, o.attr_valid, o.attr_valid_nsec);
  fill_attr(e.attr, o.attr);
}

}  // namespace

// ---- reply helpers -------------------------------------------------------------------------

namespace {

// Sends header + payload iovecs. Errors from the device other than ENOENT are left to the
// transport's own reporting: the request is over either way.
void send(ReplyWriter& out, uint64_t unique, int error, std::span<const iovec> payload) {
  std::array<iovec, 4> iov{};
  fuse_out_header h{};
  size_t total = kOutHeader;
  for (const auto& v : payload) total += v.iov_len;
  h.len = static_cast<uint32_t>(total);
  h.error = -error;
  h.unique = unique;
  iov[0] = {&h, kOutHeader};
  size_t n = 1;
  for (const auto& v : payload) {
    if (n == iov.size()) break;
    iov[n++] = v;
  }
  out.write(std::span<const iovec>(iov.data(), n));
}

}  // namespace

namespace {

template <typename T>
void reply_struct(FuseServer::Request& r, const T& v) {
  iovec iov{const_cast<T*>(&v), sizeof(T)};  // NOLINT: writev takes non-const pointers
  r.replied = true;
  r.bytes = sizeof(T);
  send(*r.out, r.in.unique, 0, std::span<const iovec>(&iov, 1));
}

void reply_bytes(FuseServer::Request& r, const void* data, size_t len) {
  iovec iov{const_cast<void*>(data), len};  // NOLINT: writev takes non-const pointers
  r.replied = true;
  r.bytes = len;
  send(*r.out, r.in.unique, 0, std::span<const iovec>(&iov, len == 0 ? 0 : 1));
}

void reply_error(FuseServer::Request& r, int err) {
  r.error = err;
  r.replied = true;
  send(*r.out, r.in.unique, err, {});
}

void reply_status_error(FuseServer::Request& r, const Error& e) {
  reply_error(r, e.code > 0 ? e.code : EIO);
}

}  // namespace

// ---- dispatch ------------------------------------------------------------------------------

const std::array<FuseServer::OpInfo, 64>& FuseServer::op_table() {
  static const std::array<OpInfo, 64> table = [] {
    std::array<OpInfo, 64> t{};
    for (auto& op : t) op = {&FuseServer::do_enosys, 0, {}};
    auto set = [&t](uint32_t opcode, std::string_view name, Handler h, uint32_t arg_size) {
      t.at(opcode) = {h, arg_size, name};
    };
    set(FUSE_INIT, "init", &FuseServer::do_init, 16);  // oldest fuse_init_in: major, minor, readahead, flags
    set(FUSE_DESTROY, "destroy", &FuseServer::do_destroy, 0);
    set(FUSE_LOOKUP, "lookup", &FuseServer::do_lookup, 1);
    set(FUSE_FORGET, "forget", &FuseServer::do_forget, sizeof(fuse_forget_in));
    set(FUSE_BATCH_FORGET, "batch_forget", &FuseServer::do_batch_forget, sizeof(fuse_batch_forget_in));
    set(FUSE_GETATTR, "getattr", &FuseServer::do_getattr, 0);
    set(FUSE_READLINK, "readlink", &FuseServer::do_readlink, 0);
    set(FUSE_OPEN, "open", &FuseServer::do_open, sizeof(uint32_t));
    set(FUSE_READ, "read", &FuseServer::do_read, sizeof(fuse_read_in));
    set(FUSE_RELEASE, "release", &FuseServer::do_release, sizeof(uint64_t));
    set(FUSE_OPENDIR, "opendir", &FuseServer::do_opendir, sizeof(uint32_t));
    set(FUSE_READDIR, "readdir", &FuseServer::do_readdir, sizeof(fuse_read_in));
    set(FUSE_READDIRPLUS, "readdirplus", &FuseServer::do_readdir, sizeof(fuse_read_in));
    set(FUSE_RELEASEDIR, "releasedir", &FuseServer::do_releasedir, sizeof(uint64_t));
    set(FUSE_STATFS, "statfs", &FuseServer::do_statfs, 0);
    set(FUSE_GETXATTR, "getxattr", &FuseServer::do_getxattr, sizeof(fuse_getxattr_in) + 1);
    set(FUSE_LISTXATTR, "listxattr", &FuseServer::do_listxattr, sizeof(fuse_getxattr_in));
    set(FUSE_ACCESS, "access", &FuseServer::do_access, sizeof(fuse_access_in));
    set(FUSE_LSEEK, "lseek", &FuseServer::do_lseek, sizeof(fuse_lseek_in));
    set(FUSE_INTERRUPT, "interrupt", &FuseServer::do_interrupt, sizeof(fuse_interrupt_in));
    // The image is read-only: every modifying operation answers EROFS.
    for (auto [op, name] : std::initializer_list<std::pair<uint32_t, std::string_view>>{
             {FUSE_SETATTR, "setattr"},
             {FUSE_SYMLINK, "symlink"},
             {FUSE_MKNOD, "mknod"},
             {FUSE_MKDIR, "mkdir"},
             {FUSE_UNLINK, "unlink"},
             {FUSE_RMDIR, "rmdir"},
             {FUSE_RENAME, "rename"},
             {FUSE_LINK, "link"},
             {FUSE_WRITE, "write"},
             {FUSE_SETXATTR, "setxattr"},
             {FUSE_REMOVEXATTR, "removexattr"},
             {FUSE_CREATE, "create"},
             {FUSE_FALLOCATE, "fallocate"},
             {FUSE_RENAME2, "rename2"},
             {FUSE_COPY_FILE_RANGE, "copy_file_range"},
             {FUSE_TMPFILE, "tmpfile"}}) {
      set(op, name, &FuseServer::do_erofs, 0);
    }
    // FLUSH, FSYNC, FSYNCDIR, locks, ioctl, poll, bmap: ENOSYS, which the kernel takes as
    // "nothing to do" and stops sending (fc->no_flush, no_fsync, no_lock...).
    for (auto [op, name] : std::initializer_list<std::pair<uint32_t, std::string_view>>{
             {FUSE_FLUSH, "flush"},
             {FUSE_FSYNC, "fsync"},
             {FUSE_FSYNCDIR, "fsyncdir"},
             {FUSE_GETLK, "getlk"},
             {FUSE_SETLK, "setlk"},
             {FUSE_SETLKW, "setlkw"},
             {FUSE_BMAP, "bmap"},
             {FUSE_IOCTL, "ioctl"},
             {FUSE_POLL, "poll"}}) {
      set(op, name, &FuseServer::do_enosys, 0);
    }
    return t;
  }();
  return table;
}

std::string_view FuseServer::opcode_name(uint32_t opcode) {
  const auto& table = op_table();
  return opcode < table.size() ? table[opcode].name : std::string_view();
}

FuseServer::FuseServer(Filesystem& fs, ServerOptions options, RequestObserver* observer)
    : fs_(fs), options_(options), observer_(observer) {}

size_t FuseServer::request_buffer_size() const {
  return std::max<size_t>(kMinReadBuffer,
                          sizeof(fuse_in_header) + sizeof(fuse_write_in) + options_.max_write) +
         4096;
}

size_t FuseServer::reply_buffer_size() const {
  return kOutHeader + size_t{options_.max_pages} * 4096U;
}

std::optional<FuseInitParams> FuseServer::init_params() const {
  if (!initialized_.load(std::memory_order_acquire)) return std::nullopt;
  return params_;
}

void FuseServer::restore(const FuseInitParams& params) {
  params_ = params;
  initialized_.store(true, std::memory_order_release);
  fs_.init(params_);
}

void FuseServer::handle(std::span<const std::byte> request, std::span<std::byte> scratch, ReplyWriter& out,
                        unsigned worker) {
  Request r;
  if (request.size() < sizeof(fuse_in_header)) return;  // cannot even name the request
  std::memcpy(&r.in, request.data(), sizeof(fuse_in_header));
  r.out = &out;
  r.scratch = scratch;
  if (r.in.len != request.size()) {
    reply_error(r, EINVAL);
    return;
  }
  r.args = request.subspan(sizeof(fuse_in_header));
  r.ctx = {r.in.unique, r.in.uid, r.in.gid, r.in.pid, worker};

  const auto& table = op_table();
  const OpInfo* op = r.in.opcode < table.size() ? &table[r.in.opcode] : nullptr;
  if (observer_ != nullptr) observer_->on_begin(worker, r.in.opcode, r.in.nodeid, r.in.unique);
  if (op == nullptr) {
    reply_error(r, ENOSYS);
  } else if (r.args.size() < op->arg_size) {
    reply_error(r, EINVAL);
  } else if (!initialized_.load(std::memory_order_acquire) && r.in.opcode != FUSE_INIT) {
    reply_error(r, EIO);  // the kernel sends nothing before INIT; a stray request is refused
  } else {
    (this->*(op->handler))(r);
  }
  if (observer_ != nullptr) observer_->on_end(worker, r.in.opcode, r.error, r.in.opcode == FUSE_READ ? r.bytes : 0);
}

// ---- notifications -------------------------------------------------------------------------

namespace {

// A notification: unique 0, the code in the error field, the body after the header.
Status notify(ReplyWriter& out, int32_t code, std::span<const iovec> body, const char* what) {
  std::array<iovec, 4> iov{};
  if (body.size() >= iov.size()) return Error{EINVAL, std::string(what) + ": too many parts"};
  fuse_out_header h{};
  size_t total = kOutHeader;
  for (const auto& v : body) total += v.iov_len;
  h.len = static_cast<uint32_t>(total);
  h.error = code;
  h.unique = 0;
  iov[0] = {&h, kOutHeader};
  size_t n = 1;
  for (const auto& v : body) iov.at(n++) = v;
  int rc = out.write(std::span<const iovec>(iov.data(), n));
  if (rc == 0 || rc == -ENOENT) return {};  // ENOENT: the kernel holds nothing of it
  return Error{-rc, std::string(what) + ": " + std::strerror(-rc)};
}

}  // namespace

Status FuseServer::notify_inval_entry(ReplyWriter& out, uint64_t parent, std::string_view name) const {
  if (!initialized_.load(std::memory_order_acquire)) return {};
  if (name.empty() || name.size() > 255) return Error{EINVAL, "invalid name to invalidate"};
  fuse_notify_inval_entry_out o{};
  o.parent = parent;
  o.namelen = static_cast<uint32_t>(name.size());
  static const char kNul = '\0';
  std::array<iovec, 3> body{{{&o, sizeof o},
                             {const_cast<char*>(name.data()), name.size()},  // NOLINT: writev's type
                             {const_cast<char*>(&kNul), 1}}};                // NOLINT: writev's type
  return notify(out, FUSE_NOTIFY_INVAL_ENTRY, body, "FUSE_NOTIFY_INVAL_ENTRY");
}

Status FuseServer::notify_inval_inode(ReplyWriter& out, uint64_t nodeid, int64_t offset, int64_t len) const {
  if (!initialized_.load(std::memory_order_acquire)) return {};
  fuse_notify_inval_inode_out o{};
  o.ino = nodeid;
  o.off = offset;
  o.len = len;
  std::array<iovec, 1> body{{{&o, sizeof o}}};
  return notify(out, FUSE_NOTIFY_INVAL_INODE, body, "FUSE_NOTIFY_INVAL_INODE");
}

Status FuseServer::notify_resend(ReplyWriter& out) {
  return notify(out, kNotifyResend, {}, "FUSE_NOTIFY_RESEND");
}

// ---- handlers ------------------------------------------------------------------------------

void FuseServer::do_init(Request& r) {
  auto in = load_arg<fuse_init_in>(r.args);
  if (in.major != FUSE_KERNEL_VERSION) {
    reply_error(r, EPROTO);
    return;
  }
  uint64_t offered = in.flags;
  if ((in.flags & FUSE_INIT_EXT) != 0) offered |= uint64_t{in.flags2} << 32U;

  // The image never changes: let the kernel cache everything and read in large, async batches.
  uint64_t wanted = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS |
                    FUSE_CACHE_SYMLINKS | FUSE_MAX_PAGES | FUSE_ASYNC_DIO | FUSE_POSIX_ACL | FUSE_INIT_EXT |
                    FUSE_BIG_WRITES;
  FuseInitParams p;
  p.major = FUSE_KERNEL_VERSION;
  p.kernel_minor = in.minor;
  p.minor = std::min<uint32_t>(in.minor, kMaxKnownMinor);
  p.kernel_flags = offered;
  p.flags = offered & wanted;
  p.max_readahead = in.max_readahead;
  p.max_write = options_.max_write;
  p.max_pages = options_.max_pages;
  p.max_background = options_.max_background;
  p.congestion_threshold = options_.congestion_threshold;
  p.time_gran = 1;

  fuse_init_out o{};
  o.major = p.major;
  o.minor = p.minor;
  o.max_readahead = p.max_readahead;
  o.flags = static_cast<uint32_t>(p.flags & 0xFFFFFFFFULL);
  o.flags2 = static_cast<uint32_t>(p.flags >> 32U);
  o.max_background = p.max_background;
  o.congestion_threshold = p.congestion_threshold;
  o.max_write = p.max_write;
  o.time_gran = p.time_gran;
  o.max_pages = p.max_pages;

  params_ = p;
  fs_.init(params_);
  initialized_.store(true, std::memory_order_release);
  reply_struct(r, o);
}

void FuseServer::do_destroy(Request& r) {
  destroyed_.store(true, std::memory_order_release);
  fs_.destroy();
  reply_bytes(r, nullptr, 0);
}

void FuseServer::do_lookup(Request& r) {
  auto name = arg_name(r.args, 0);
  if (!name) return reply_error(r, EINVAL);
  auto e = fs_.lookup(r.ctx, r.in.nodeid, *name);
  if (!e.ok()) return reply_status_error(r, e.error());
  fuse_entry_out o{};
  fill_entry(*e, o);
  reply_struct(r, o);
}

void FuseServer::do_forget(Request& r) {
  auto in = load_arg<fuse_forget_in>(r.args);
  fs_.forget(r.ctx, r.in.nodeid, in.nlookup);
  r.replied = true;  // FORGET has no reply
}

void FuseServer::do_batch_forget(Request& r) {
  auto in = load_arg<fuse_batch_forget_in>(r.args);
  size_t avail = (r.args.size() - sizeof(fuse_batch_forget_in)) / sizeof(fuse_forget_one);
  size_t count = std::min<size_t>(in.count, avail);
  for (size_t i = 0; i < count; ++i) {
    auto one = load_arg<fuse_forget_one>(r.args, sizeof(fuse_batch_forget_in) + i * sizeof(fuse_forget_one));
    fs_.forget(r.ctx, one.nodeid, one.nlookup);
  }
  r.replied = true;  // BATCH_FORGET has no reply
}

void FuseServer::do_getattr(Request& r) {
  auto a = fs_.getattr(r.ctx, r.in.nodeid);
  if (!a.ok()) return reply_status_error(r, a.error());
  fuse_attr_out o{};
  split_timeout(a->attr_timeout, o.attr_valid, o.attr_valid_nsec);
  fill_attr(a->attr, o.attr);
  reply_struct(r, o);
}

void FuseServer::do_readlink(Request& r) {
  auto target = fs_.readlink(r.ctx, r.in.nodeid);
  if (!target.ok()) return reply_status_error(r, target.error());
  reply_bytes(r, target->data(), target->size());
}

namespace {
fuse_open_out open_out(const OpenReply& o) {
  fuse_open_out out{};
  out.fh = o.fh;
  if (o.keep_cache) out.open_flags |= FOPEN_KEEP_CACHE;
  if (o.cache_dir) out.open_flags |= FOPEN_CACHE_DIR;
  if (o.direct_io) out.open_flags |= FOPEN_DIRECT_IO;
  return out;
}
}  // namespace

void FuseServer::do_open(Request& r) {
  auto flags = load_arg<uint32_t>(r.args);
  auto o = fs_.open(r.ctx, r.in.nodeid, flags);
  if (!o.ok()) return reply_status_error(r, o.error());
  reply_struct(r, open_out(*o));
}

void FuseServer::do_opendir(Request& r) {
  auto flags = load_arg<uint32_t>(r.args);
  auto o = fs_.opendir(r.ctx, r.in.nodeid, flags);
  if (!o.ok()) return reply_status_error(r, o.error());
  reply_struct(r, open_out(*o));
}

void FuseServer::do_read(Request& r) {
  auto in = load_arg<fuse_read_in>(r.args);
  size_t cap = r.scratch.size() - kOutHeader;
  size_t want = std::min<size_t>(in.size, cap);
  auto n = fs_.read(r.ctx, r.in.nodeid, in.fh, in.offset, r.scratch.subspan(kOutHeader, want));
  if (!n.ok()) return reply_status_error(r, n.error());
  reply_bytes(r, r.scratch.data() + kOutHeader, std::min(*n, want));
}

void FuseServer::do_release(Request& r) {
  auto fh = load_arg<uint64_t>(r.args);
  fs_.release(r.in.nodeid, fh);
  reply_bytes(r, nullptr, 0);
}

void FuseServer::do_releasedir(Request& r) {
  auto fh = load_arg<uint64_t>(r.args);
  fs_.releasedir(r.in.nodeid, fh);
  reply_bytes(r, nullptr, 0);
}

namespace {

// Encodes dirents into the reply buffer, 8-byte aligned as the kernel parses them.
class BufferDirSink final : public DirSink {
 public:
  BufferDirSink(std::span<std::byte> buf, bool plus) : buf_(buf), plus_(plus) {}

  bool add(std::string_view name, uint64_t ino, uint32_t dtype, uint64_t next_offset) override {
    size_t len = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + name.size());
    if (used_ + len > buf_.size()) return false;
    fuse_dirent d{};
    d.ino = ino;
    d.off = next_offset;
    d.namelen = static_cast<uint32_t>(name.size());
    d.type = dtype;
    std::byte* p = buf_.data() + used_;
    std::memcpy(p, &d, FUSE_NAME_OFFSET);
    std::memcpy(p + FUSE_NAME_OFFSET, name.data(), name.size());
    std::memset(p + FUSE_NAME_OFFSET + name.size(), 0, len - FUSE_NAME_OFFSET - name.size());
    used_ += len;
    return true;
  }

  bool add_plus(std::string_view name, const Entry& entry, uint64_t next_offset) override {
    size_t len = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + name.size());
    if (used_ + len > buf_.size()) return false;
    fuse_direntplus d{};
    fill_entry(entry, d.entry_out);
    d.dirent.ino = entry.attr.st_ino;
    d.dirent.off = next_offset;
    d.dirent.namelen = static_cast<uint32_t>(name.size());
    d.dirent.type = (entry.attr.st_mode & S_IFMT) >> 12U;
    std::byte* p = buf_.data() + used_;
    std::memcpy(p, &d, FUSE_NAME_OFFSET_DIRENTPLUS);
    std::memcpy(p + FUSE_NAME_OFFSET_DIRENTPLUS, name.data(), name.size());
    std::memset(p + FUSE_NAME_OFFSET_DIRENTPLUS + name.size(), 0,
                len - FUSE_NAME_OFFSET_DIRENTPLUS - name.size());
    used_ += len;
    return true;
  }

  [[nodiscard]] bool plus() const override { return plus_; }
  [[nodiscard]] size_t used() const { return used_; }

 private:
  std::span<std::byte> buf_;
  bool plus_;
  size_t used_ = 0;
};

}  // namespace

void FuseServer::do_readdir(Request& r) {
  auto in = load_arg<fuse_read_in>(r.args);
  size_t cap = std::min<size_t>(in.size, r.scratch.size() - kOutHeader);
  BufferDirSink sink(r.scratch.subspan(kOutHeader, cap), r.in.opcode == FUSE_READDIRPLUS);
  auto st = fs_.readdir(r.ctx, r.in.nodeid, in.fh, in.offset, sink);
  if (!st.ok()) return reply_status_error(r, st.error());
  reply_bytes(r, r.scratch.data() + kOutHeader, sink.used());
}

void FuseServer::do_statfs(Request& r) {
  auto s = fs_.statfs(r.ctx, r.in.nodeid);
  if (!s.ok()) return reply_status_error(r, s.error());
  fuse_statfs_out o{};
  o.st.blocks = s->f_blocks;
  o.st.bfree = s->f_bfree;
  o.st.bavail = s->f_bavail;
  o.st.files = s->f_files;
  o.st.ffree = s->f_ffree;
  o.st.bsize = static_cast<uint32_t>(s->f_bsize);
  o.st.namelen = static_cast<uint32_t>(s->f_namemax);
  o.st.frsize = static_cast<uint32_t>(s->f_frsize);
  reply_struct(r, o);
}

namespace {
// getxattr/listxattr share the size-probe protocol: size 0 asks for the length only.
void reply_sized(FuseServer::Request& r, uint32_t size, const std::string& value) {
  if (size == 0) {
    fuse_getxattr_out o{};
    o.size = static_cast<uint32_t>(value.size());
    reply_struct(r, o);
  } else if (value.size() > size) {
    reply_error(r, ERANGE);
  } else {
    reply_bytes(r, value.data(), value.size());
  }
}
}  // namespace

void FuseServer::do_getxattr(Request& r) {
  auto in = load_arg<fuse_getxattr_in>(r.args);
  auto name = arg_name(r.args, sizeof(fuse_getxattr_in));
  if (!name) return reply_error(r, EINVAL);
  auto v = fs_.getxattr(r.ctx, r.in.nodeid, *name);
  if (!v.ok()) return reply_status_error(r, v.error());
  reply_sized(r, in.size, *v);
}

void FuseServer::do_listxattr(Request& r) {
  auto in = load_arg<fuse_getxattr_in>(r.args);
  auto v = fs_.listxattr(r.ctx, r.in.nodeid);
  if (!v.ok()) return reply_status_error(r, v.error());
  reply_sized(r, in.size, *v);
}

void FuseServer::do_access(Request& r) {
  auto in = load_arg<fuse_access_in>(r.args);
  auto st = fs_.access(r.ctx, r.in.nodeid, in.mask);
  if (!st.ok()) return reply_status_error(r, st.error());
  reply_bytes(r, nullptr, 0);
}

void FuseServer::do_lseek(Request& r) {
  auto in = load_arg<fuse_lseek_in>(r.args);
  auto off = fs_.lseek(r.ctx, r.in.nodeid, in.fh, in.offset, in.whence);
  if (!off.ok()) return reply_status_error(r, off.error());
  fuse_lseek_out o{};
  o.offset = *off;
  reply_struct(r, o);
}

void FuseServer::do_interrupt(Request& r) {
  // Requests are short and never block on anything the caller could give up on: finishing
  // them is the answer. INTERRUPT itself has no reply.
  r.replied = true;
}

void FuseServer::do_erofs(Request& r) {
  reply_error(r, EROFS);
}

void FuseServer::do_enosys(Request& r) {
  reply_error(r, ENOSYS);
}

}  // namespace ferry::fuse
