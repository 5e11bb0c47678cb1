// FuseServer: the kernel FUSE protocol engine. Decodes one request, dispatches it through an
// opcode table to a Filesystem, encodes the reply; encodes the notifications a daemon sends
// unasked (FUSE_NOTIFY_INVAL_ENTRY, _INVAL_INODE, _RESEND). It is the only code that knows
// opcodes and notify codes: others name an opcode through opcode_name().
//
// It knows nothing of where requests come from: a transport reads them and passes the bytes
// with a per-worker scratch buffer; replies and notifications leave through a ReplyWriter.
// Requests are never trusted: a malformed one is answered EINVAL (or dropped when it cannot be
// answered) and never read out of range.
//
// Thread-safety: handle() may run on many threads at once, each with its own worker index
// (below kMaxWorkers; one thread per index at a time: the filesystem and the observer keep
// per-worker state by it). FUSE_INIT is answered once; a successor process is handed the
// negotiated parameters with restore() instead. The notify_*() calls may come from any thread.
#pragma once

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "fuse/abi/init_params.h"
#include "fuse/server/filesystem.h"

namespace ferry::fuse {

// Where replies go. write() returns 0 or a negative errno; -ENOENT means the kernel no longer
// waits for this request (it was interrupted, or resent to another process) and is not an error.
class ReplyWriter {
 public:
  virtual ~ReplyWriter() = default;
  virtual int write(std::span<const iovec> iov) = 0;
};

// Sees every request begin and end (metrics, in-flight tracking). Called on the request's
// thread with its worker index, on_end() always after the reply went out, with the reply's
// errno (0 = success) and the bytes of file data it carried (a READ's; 0 for every other
// opcode), so that an observer needs to know no opcode.
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  virtual void on_begin(unsigned worker, uint32_t opcode, uint64_t nodeid, uint64_t unique) = 0;
  virtual void on_end(unsigned worker, uint32_t opcode, int error, uint64_t data_bytes) = 0;
};

struct ServerOptions {
  uint32_t max_write = 128 * 1024;  // we never receive writes; this sizes request buffers
  uint16_t max_pages = 256;         // 1 MiB reads
  uint16_t max_background = 64;
  uint16_t congestion_threshold = 48;
};

class FuseServer {
 public:
  struct Request;  // one decoded request in flight (defined in the .cc)

  FuseServer(Filesystem& fs, ServerOptions options, RequestObserver* observer = nullptr);

  // Handles one request on worker `worker` (< kMaxWorkers, see above). `scratch` must hold
  // reply_buffer_size() bytes and is used for the reply; it is not shared between threads.
  void handle(std::span<const std::byte> request, std::span<std::byte> scratch, ReplyWriter& out,
              unsigned worker = 0);

  // The opcode's name as the metrics print it ("read", "lookup"...), empty when unknown.
  static std::string_view opcode_name(uint32_t opcode);

  // Notifications. Each is one write to `out`; a kernel that holds nothing for the name or
  // node answers ENOENT, which is success here (nothing to forget). Before FUSE_INIT the
  // kernel caches nothing, and the invalidations do nothing.
  // FUSE_NOTIFY_INVAL_ENTRY: the kernel drops its dentry `name` in directory `parent` (a new
  // lookup follows); the inode stays for whoever holds it open.
  Status notify_inval_entry(ReplyWriter& out, uint64_t parent, std::string_view name) const;
  // FUSE_NOTIFY_INVAL_INODE: the node's attributes, and its cached pages from `offset` on
  // (none when offset < 0; all of them from offset when len <= 0).
  Status notify_inval_inode(ReplyWriter& out, uint64_t nodeid, int64_t offset, int64_t len) const;
  // FUSE_NOTIFY_RESEND: the kernel re-queues every request read but not answered on this
  // connection. Only meaningful once the process that read them is gone.
  static Status notify_resend(ReplyWriter& out);

  // Buffer sizes a transport must use for reading requests and for handle()'s scratch.
  [[nodiscard]] size_t request_buffer_size() const;
  [[nodiscard]] size_t reply_buffer_size() const;

  // The negotiated parameters, once FUSE_INIT has been answered (or restore() called).
  [[nodiscard]] std::optional<FuseInitParams> init_params() const;
  // Adopts parameters negotiated by an earlier process on the same connection.
  void restore(const FuseInitParams& params);
  // FUSE_DESTROY was received: the kernel is tearing the connection down.
  [[nodiscard]] bool destroyed() const { return destroyed_.load(std::memory_order_acquire); }

 private:
  using Handler = void (FuseServer::*)(Request&);
  struct OpInfo {
    Handler handler = nullptr;
    uint32_t arg_size = 0;  // minimum argument bytes after the header
    std::string_view name;  // empty for opcodes this engine does not know
  };
  static const std::array<OpInfo, 64>& op_table();

  void do_init(Request& r);
  void do_destroy(Request& r);
  void do_lookup(Request& r);
  void do_forget(Request& r);
  void do_batch_forget(Request& r);
  void do_getattr(Request& r);
  void do_readlink(Request& r);
  void do_open(Request& r);
  void do_read(Request& r);
  void do_release(Request& r);
  void do_opendir(Request& r);
  void do_readdir(Request& r);
  void do_releasedir(Request& r);
  void do_statfs(Request& r);
  void do_getxattr(Request& r);
  void do_listxattr(Request& r);
  void do_access(Request& r);
  void do_lseek(Request& r);
  void do_interrupt(Request& r);
  void do_erofs(Request& r);
  void do_enosys(Request& r);

  Filesystem& fs_;
  ServerOptions options_;
  RequestObserver* observer_;
  FuseInitParams params_{};
  std::atomic<bool> initialized_{false};
  std::atomic<bool> destroyed_{false};
};

}  // namespace ferry::fuse
