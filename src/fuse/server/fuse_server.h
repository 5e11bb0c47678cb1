// FuseServer: the kernel FUSE protocol engine. Decodes one request, dispatches it through an
// opcode table to a Filesystem, encodes the reply. It is the only code that knows opcodes.
//
// It knows nothing of where requests come from: a transport reads them and passes the bytes
// with a per-thread scratch buffer; replies leave through a ReplyWriter. Requests are never
// trusted: a malformed one is answered EINVAL (or dropped when it cannot be answered) and
// never read out of range.
//
// Thread-safety: handle() may run on many threads at once. FUSE_INIT is answered once; a
// successor process is handed the negotiated parameters with restore() instead.
#pragma once

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "fuse/server/filesystem.h"
#include "fuse/server/init_params.h"

namespace ferry::fuse {

// Where replies go. write() returns 0 or a negative errno; -ENOENT means the kernel no longer
// waits for this request (it was interrupted, or resent to another process) and is not an error.
class ReplyWriter {
 public:
  virtual ~ReplyWriter() = default;
  virtual int write(std::span<const iovec> iov) = 0;
};

// Sees every request begin and end (metrics, in-flight tracking). Called on the request's thread.
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  virtual void on_begin(uint32_t opcode, uint64_t nodeid, uint64_t unique) = 0;
  virtual void on_end(uint32_t opcode, int error, uint64_t bytes) = 0;
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

  // Handles one request. `scratch` must hold reply_buffer_size() bytes and is used for the
  // reply; it is not shared between threads.
  void handle(std::span<const std::byte> request, std::span<std::byte> scratch, ReplyWriter& out);

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
