// The kernel FUSE wire protocol: <linux/fuse.h> (7.38 on Debian 12) plus the definitions of
// newer kernels that Ferry uses. Features are detected from what the kernel offers in
// FUSE_INIT, never assumed from these constants existing.
//
// Imports nothing of ours; knows nothing of images or transports.
#pragma once

#include <linux/fuse.h>

#include <cstdint>

namespace ferry::fuse {

// The newest protocol minor this engine knows; the reply to FUSE_INIT caps the kernel's at it.
inline constexpr uint32_t kMaxKnownMinor = 40;

// Linux 6.9, protocol 7.40: the kernel re-queues every request a daemon read and did not
// answer (fs/fuse/dev.c fuse_resend), marking each unique with kUniqueResend.
inline constexpr uint64_t kInitHasResend = 1ULL << 39;
inline constexpr int32_t kNotifyResend = 7;
inline constexpr uint64_t kUniqueResend = 1ULL << 63;

// Other post-7.38 INIT flags, named so logs can print what the kernel offered.
inline constexpr uint64_t kInitPassthrough = 1ULL << 37;
inline constexpr uint64_t kInitNoExportSupport = 1ULL << 38;
inline constexpr uint64_t kInitAllowIdmap = 1ULL << 40;
inline constexpr uint64_t kInitOverIoUring = 1ULL << 41;
inline constexpr uint64_t kInitRequestTimeout = 1ULL << 42;

// The kernel refuses reads into buffers smaller than this plus max_write.
inline constexpr uint32_t kMinReadBuffer = FUSE_MIN_READ_BUFFER;

static_assert(sizeof(fuse_in_header) == 40);
static_assert(sizeof(fuse_out_header) == 16);
static_assert(sizeof(fuse_init_in) == 64);
static_assert(sizeof(fuse_init_out) == 64);
static_assert(sizeof(fuse_attr) == 88);
static_assert(sizeof(fuse_entry_out) == 128);
static_assert(sizeof(fuse_attr_out) == 104);
static_assert(sizeof(fuse_open_out) == 16);
static_assert(sizeof(fuse_read_in) == 40);
static_assert(sizeof(fuse_dirent) == 24);
static_assert(sizeof(fuse_direntplus) == 152);
static_assert(sizeof(fuse_kstatfs) == 80);
static_assert(sizeof(fuse_getxattr_in) == 8);
static_assert(sizeof(fuse_getxattr_out) == 8);
static_assert(sizeof(fuse_lseek_in) == 24);
static_assert(sizeof(fuse_batch_forget_in) == 8);
static_assert(sizeof(fuse_forget_one) == 16);

}  // namespace ferry::fuse
