// FuseSession: one kernel FUSE connection as seen by a daemon: the /dev/fuse open file and
// the mountpoint it serves.
//
// A session is either created by mounting (open /dev/fuse, mount(2)) or adopted from an fd
// handed over by a supervisor (a successor process; no FUSE_INIT will follow). Every thread
// reads the SAME open file: requests read through it stay in its processing queue, which the
// supervisor's copy keeps alive if this process dies, so a successor can have them resent.
// (Private FUSE_DEV_IOC_CLONE files would fail them with ECONNABORTED instead.)
//
// Thread-safety: read_request()/write() may be called from many threads; unmount() and the
// destructor from one. Destroying a session closes our fd but never unmounts.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace ferry::fuse {

struct MountOptions {
  std::string mountpoint;
  std::string fsname = "ferry";     // shown as the source in /proc/mounts
  std::string subtype = "ferry";    // fs type "fuse.<subtype>"
  bool allow_other = true;          // containers run under many uids
  bool default_permissions = true;  // the kernel checks modes, as on a local filesystem
  uint32_t max_read = 1024 * 1024;
};

enum class ReadOutcome { kRequest, kInterrupted, kUnmounted };

class FuseSession {
 public:
  // Opens /dev/fuse and mounts it at options.mountpoint (read-only). Errors name the
  // mountpoint and the reason (not a directory, permission, no /dev/fuse).
  static Result<FuseSession> mount(const MountOptions& options);
  // Adopts an fd of an existing connection. Verifies it is /dev/fuse (a character device with
  // the FUSE device number); anything else is refused and left untouched.
  static Result<FuseSession> adopt(UniqueFd fd, std::string mountpoint);

  FuseSession(FuseSession&&) noexcept = default;
  FuseSession& operator=(FuseSession&&) noexcept = default;
  FuseSession(const FuseSession&) = delete;
  FuseSession& operator=(const FuseSession&) = delete;
  ~FuseSession() = default;

  // Reads one request into buf (which must hold the server's request_buffer_size()).
  // kInterrupted: a signal arrived (the caller checks whether to stop); kUnmounted: the
  // connection is gone. Other failures are errors.
  Result<ReadOutcome> read_request(std::span<std::byte> buf, size_t& len) const;

  // Writes one reply or notification (the server encodes both). Returns 0 or -errno
  // (ENOENT: nobody waits for the reply, or the kernel holds nothing a notification names).
  // A notification that invalidates a dentry takes its directory's lock in the kernel, so it
  // may wait for requests in that directory to be answered: never write one from a thread
  // that other requests' answers depend on.
  int write(std::span<const iovec> iov) const;

  // Unmounts the mountpoint (lazily when busy). Idempotent.
  Status unmount();

  // A new fd of the same open file, for handing to a supervisor.
  [[nodiscard]] Result<UniqueFd> dup_fd() const;

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const std::string& mountpoint() const { return mountpoint_; }

 private:
  FuseSession(UniqueFd fd, std::string mountpoint) : fd_(std::move(fd)), mountpoint_(std::move(mountpoint)) {}
  UniqueFd fd_;
  std::string mountpoint_;
};

// True when `path` is the root of a mounted FUSE filesystem (per /proc/self/mountinfo).
bool is_fuse_mountpoint(const std::string& path);

}  // namespace ferry::fuse
