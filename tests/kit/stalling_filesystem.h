// StallingFilesystem: a decorator whose READs of one path never complete, as if the daemon
// died while holding them (the request stays in the kernel's processing queue, and only a
// FUSE_NOTIFY_RESEND by a successor answers it). Everything else is forwarded.
//
// The path (relative to the FUSE root, e.g. "d0/f3") is resolved by the first READ, through
// the inner filesystem's lookup; that adds lookups the kernel does not know of, which only
// keeps the image referenced. A stalled thread sleeps until the process ends: use it in a
// daemon that is killed, never stopped.
//
// Thread-safety: as the inner filesystem's.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "kit/forwarding_filesystem.h"

namespace ferry::testkit {

class StallingFilesystem final : public ForwardingFilesystem {
 public:
  StallingFilesystem(fuse::Filesystem& inner, std::string path)
      : ForwardingFilesystem(inner), path_(std::move(path)) {}

  Result<size_t> read(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                      std::span<std::byte> out) override;

  // Reads that are stalled now.
  [[nodiscard]] int stalled() const { return stalled_.load(); }

 private:
  uint64_t stall_node(const fuse::RequestContext& ctx);

  const std::string path_;
  std::once_flag resolved_;
  std::atomic<uint64_t> node_{0};  // 0: not found
  std::atomic<int> stalled_{0};
};

}  // namespace ferry::testkit
