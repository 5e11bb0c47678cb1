// Filesystem: what a FUSE filesystem implements, in terms of node ids, not wire structs.
//
// FuseServer decodes requests and calls these methods; it encodes what they return. Every
// method may be called from many threads at once. Errors are errno values (Error::code)
// returned to the caller of the syscall. Defaults answer ENOSYS (the kernel then stops asking
// for some operations, e.g. FLUSH) so that an implementation states only what it supports.
//
// Kernel rules implementations must respect: every successful lookup() and every entry a
// readdirplus() emits with a non-zero node id adds one to the kernel's lookup count of that
// node, which forget() later subtracts; node ids must stay valid until forgotten.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"

namespace ferry::fuse {

struct FuseInitParams;

// The maximum worker threads of one server; worker indices are below it.
inline constexpr unsigned kMaxWorkers = 256;

struct RequestContext {
  uint64_t unique = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
  // The worker thread serving the request (< kMaxWorkers). No two threads use the same index
  // at the same time, so an implementation may keep per-worker state by it.
  unsigned worker = 0;
};

struct Entry {
  uint64_t nodeid = 0;  // 0 = negative entry (cached "does not exist")
  uint64_t generation = 0;
  struct stat attr {};
  double entry_timeout = 0;  // seconds
  double attr_timeout = 0;
};

struct AttrReply {
  struct stat attr {};
  double attr_timeout = 0;
};

struct OpenReply {
  uint64_t fh = 0;
  bool keep_cache = false;  // FOPEN_KEEP_CACHE: page cache survives open
  bool cache_dir = false;   // FOPEN_CACHE_DIR: the kernel may cache readdir results
  bool direct_io = false;
};

// Receives directory entries for READDIR / READDIRPLUS. add() returns false when the reply
// buffer is full; the entry was then NOT emitted and must not count as a lookup.
class DirSink {
 public:
  virtual ~DirSink() = default;
  // `next_offset` is the offset the kernel passes back to continue after this entry.
  virtual bool add(std::string_view name, uint64_t ino, uint32_t dtype, uint64_t next_offset) = 0;
  // READDIRPLUS form: the entry carries attributes (entry.nodeid may be 0 for "." and "..").
  virtual bool add_plus(std::string_view name, const Entry& entry, uint64_t next_offset) = 0;
  [[nodiscard]] virtual bool plus() const = 0;
};

class Filesystem {
 public:
  virtual ~Filesystem() = default;

  // The connection was (re)established with these parameters.
  virtual void init(const FuseInitParams& /*params*/) {}
  virtual void destroy() {}

  virtual Result<Entry> lookup(const RequestContext& ctx, uint64_t parent, std::string_view name);
  virtual void forget(const RequestContext& /*ctx*/, uint64_t /*nodeid*/, uint64_t /*nlookup*/) {}
  virtual Result<AttrReply> getattr(const RequestContext& ctx, uint64_t nodeid);
  virtual Result<std::string> readlink(const RequestContext& ctx, uint64_t nodeid);
  virtual Result<OpenReply> open(const RequestContext& ctx, uint64_t nodeid, uint32_t flags);
  // Reads up to out.size() bytes at offset into out; returns the count (0 at end of file).
  virtual Result<size_t> read(const RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                              std::span<std::byte> out);
  virtual void release(uint64_t /*nodeid*/, uint64_t /*fh*/) {}
  virtual Result<OpenReply> opendir(const RequestContext& ctx, uint64_t nodeid, uint32_t flags);
  // Emits entries after `offset` (0 = from the start) into sink until it is full or the
  // directory ends.
  virtual Status readdir(const RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                         DirSink& sink);
  virtual void releasedir(uint64_t /*nodeid*/, uint64_t /*fh*/) {}
  virtual Result<struct statvfs> statfs(const RequestContext& ctx, uint64_t nodeid);
  virtual Result<std::string> getxattr(const RequestContext& ctx, uint64_t nodeid, std::string_view name);
  // All names, each followed by a NUL byte, as listxattr(2) returns them.
  virtual Result<std::string> listxattr(const RequestContext& ctx, uint64_t nodeid);
  virtual Status access(const RequestContext& ctx, uint64_t nodeid, uint32_t mask);
  virtual Result<uint64_t> lseek(const RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                                 uint32_t whence);
};

}  // namespace ferry::fuse
