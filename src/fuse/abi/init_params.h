// FuseInitParams: everything negotiated by FUSE_INIT, as one value.
//
// A connection sees FUSE_INIT once in its life. A process that takes over an existing
// connection never sees it and must be handed this value (saved with the daemon's state).
#pragma once

#include <cstdint>

#include "fuse/abi/fuse_abi.h"

namespace ferry::fuse {

struct FuseInitParams {
  uint32_t major = 0;         // protocol major agreed (7)
  uint32_t minor = 0;         // protocol minor agreed: min(kernel's, ours)
  uint32_t kernel_minor = 0;  // what the kernel speaks
  uint64_t kernel_flags = 0;  // every flag the kernel offered (flags | flags2 << 32)
  uint64_t flags = 0;         // the flags we enabled in the reply
  uint32_t max_readahead = 0;
  uint32_t max_write = 0;
  uint16_t max_pages = 0;
  uint16_t max_background = 0;
  uint16_t congestion_threshold = 0;
  uint32_t time_gran = 0;

  // The kernel can re-queue requests a dead daemon had read (FUSE_NOTIFY_RESEND).
  [[nodiscard]] bool kernel_can_resend() const { return (kernel_flags & kInitHasResend) != 0; }
  // Largest READ the kernel will send, in bytes.
  [[nodiscard]] uint32_t max_read_size() const {
    return (flags & FUSE_MAX_PAGES) != 0 ? uint32_t{max_pages} * 4096U : 32U * 4096U;
  }

  friend bool operator==(const FuseInitParams&, const FuseInitParams&) = default;
};

}  // namespace ferry::fuse
