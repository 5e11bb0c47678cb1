// The EROFS on-disk format: the structs and constants Ferry's reader needs.
//
// Mirrors the layout the Linux kernel defines in fs/erofs/erofs_fs.h (written from the format
// description, not copied). All integers are little-endian. The fixed-size structs below match
// the disk byte for byte (the static_asserts prove it) and are filled with memcpy through
// decode<T>(), never by casting a pointer into the image, which may be unaligned.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

namespace ferry::erofs::format {

static_assert(std::endian::native == std::endian::little, "the decoders below assume a little-endian host");

// ---- superblock ----------------------------------------------------------------------------

inline constexpr uint64_t kSuperblockOffset = 1024;  // room for a boot sector before it
inline constexpr uint32_t kMagic = 0xE0F5E1E2;
inline constexpr unsigned kMinBlockSizeBits = 9;   // 512 bytes
inline constexpr unsigned kMaxBlockSizeBits = 16;  // 64 KiB

inline constexpr uint32_t kCompatSuperblockChecksum = 0x1;
inline constexpr uint32_t kCompatMtime = 0x2;

inline constexpr uint32_t kIncompatZeroPadding = 0x1;
inline constexpr uint32_t kIncompatComprCfgs = 0x2;  // same bit: BIG_PCLUSTER
inline constexpr uint32_t kIncompatChunkedFile = 0x4;
inline constexpr uint32_t kIncompatDeviceTable = 0x8;  // same bit: COMPR_HEAD2
inline constexpr uint32_t kIncompatZtailpacking = 0x10;
inline constexpr uint32_t kIncompatFragments = 0x20;  // same bit: DEDUPE
inline constexpr uint32_t kIncompatXattrPrefixes = 0x40;
// ZERO_PADDING (lz4_0padding) is set by mkfs.erofs only for compressed images: refusing it at
// open gives the operator one clear error instead of EIO on every compressed file later.
inline constexpr uint32_t kIncompatSupported = kIncompatChunkedFile | kIncompatDeviceTable;

struct DiskSuperblock {
  uint32_t magic;
  uint32_t checksum;  // crc32c over the superblock block with this field zeroed
  uint32_t feature_compat;
  uint8_t blkszbits;
  uint8_t sb_extslots;
  uint16_t root_nid;
  uint64_t inos;
  uint64_t build_time;  // the mtime of every compact inode
  uint32_t build_time_nsec;
  uint32_t blocks;
  uint32_t meta_blkaddr;   // nid 0 lives at meta_blkaddr * block size
  uint32_t xattr_blkaddr;  // shared xattr id 0 lives at xattr_blkaddr * block size
  uint8_t uuid[16];
  uint8_t volume_name[16];
  uint32_t feature_incompat;
  uint16_t available_compr_algs;
  uint16_t extra_devices;
  uint16_t devt_slotoff;  // device table offset in units of kDeviceSlotSize
  uint8_t dirblkbits;     // directory block size beyond the block size; must be 0
  uint8_t xattr_prefix_count;
  uint32_t xattr_prefix_start;
  uint64_t packed_nid;
  uint8_t xattr_filter_reserved;
  uint8_t reserved[23];
};
static_assert(sizeof(DiskSuperblock) == 128);
static_assert(offsetof(DiskSuperblock, checksum) == 4);
static_assert(offsetof(DiskSuperblock, blkszbits) == 12);
static_assert(offsetof(DiskSuperblock, root_nid) == 14);
static_assert(offsetof(DiskSuperblock, build_time) == 24);
static_assert(offsetof(DiskSuperblock, meta_blkaddr) == 40);
static_assert(offsetof(DiskSuperblock, uuid) == 48);
static_assert(offsetof(DiskSuperblock, feature_incompat) == 80);
static_assert(offsetof(DiskSuperblock, extra_devices) == 86);
static_assert(offsetof(DiskSuperblock, dirblkbits) == 90);
static_assert(offsetof(DiskSuperblock, packed_nid) == 96);
inline constexpr uint64_t kChecksumFieldOffset = offsetof(DiskSuperblock, checksum);

// One extra device. mkfs.erofs --blobdev leaves the tag empty and blocks/mapped_blkaddr 0.
struct DiskDeviceSlot {
  uint8_t tag[64];
  uint32_t blocks;
  uint32_t mapped_blkaddr;  // non-zero: the device also appears at this block of the flat space
  uint8_t reserved[56];
};
static_assert(sizeof(DiskDeviceSlot) == 128);
static_assert(offsetof(DiskDeviceSlot, blocks) == 64);
inline constexpr uint64_t kDeviceSlotSize = sizeof(DiskDeviceSlot);

// ---- inodes --------------------------------------------------------------------------------

inline constexpr unsigned kInodeSlotBits = 5;  // an inode starts at meta base + nid * 32
inline constexpr uint16_t kInodeFormatExtended = 0x1;
inline constexpr unsigned kInodeDataLayoutShift = 1;
inline constexpr uint16_t kInodeDataLayoutMask = 0x7;
inline constexpr uint16_t kInodeFormatKnownBits = 0xF;

inline constexpr uint8_t kLayoutFlatPlain = 0;
inline constexpr uint8_t kLayoutCompressedLegacy = 1;
inline constexpr uint8_t kLayoutFlatInline = 2;
inline constexpr uint8_t kLayoutCompressed = 3;
inline constexpr uint8_t kLayoutChunkBased = 4;

struct DiskInodeCompact {
  uint16_t format;
  uint16_t xattr_icount;
  uint16_t mode;
  uint16_t nlink;
  uint32_t size;
  uint32_t reserved;
  uint32_t u;  // raw_blkaddr, rdev or chunk format, by layout and type
  uint32_t ino;
  uint16_t uid;
  uint16_t gid;
  uint32_t reserved2;
};
static_assert(sizeof(DiskInodeCompact) == 32);
static_assert(offsetof(DiskInodeCompact, u) == 16);

struct DiskInodeExtended {
  uint16_t format;
  uint16_t xattr_icount;
  uint16_t mode;
  uint16_t reserved;
  uint64_t size;
  uint32_t u;
  uint32_t ino;
  uint32_t uid;
  uint32_t gid;
  uint64_t mtime;
  uint32_t mtime_nsec;
  uint32_t nlink;
  uint8_t reserved2[16];
};
static_assert(sizeof(DiskInodeExtended) == 64);
static_assert(offsetof(DiskInodeExtended, mtime) == 32);
static_assert(offsetof(DiskInodeExtended, nlink) == 44);

// Block addresses that name no block: a hole in a chunk-based file.
inline constexpr uint32_t kNullAddr = 0xFFFFFFFF;

// ---- chunk-based files ---------------------------------------------------------------------

inline constexpr uint16_t kChunkFormatBlkbitsMask = 0x1F;  // chunk size = block size << this
inline constexpr uint16_t kChunkFormatIndexes = 0x20;      // 8-byte indexes, else 4-byte block map
inline constexpr uint16_t kChunkFormatKnownBits = kChunkFormatBlkbitsMask | kChunkFormatIndexes;
inline constexpr uint64_t kBlockMapEntrySize = 4;

struct DiskChunkIndex {
  uint16_t advise;
  uint16_t device_id;  // 0 = primary device, else 1-based slot, masked by the device id mask
  uint32_t blkaddr;
};
static_assert(sizeof(DiskChunkIndex) == 8);

// ---- directories ---------------------------------------------------------------------------

// A directory block starts with an array of 12-byte dirents; the first one's nameoff also says
// where the names start, hence how many dirents the block holds. Names are not NUL-terminated;
// the last one ends at the first NUL or at the end of the block. The struct would need packing
// (a u64 followed by 4 bytes), so dirents are decoded field by field at these offsets.
inline constexpr uint32_t kDirentSize = 12;
inline constexpr uint32_t kDirentNidOffset = 0;
inline constexpr uint32_t kDirentNameoffOffset = 8;
inline constexpr uint32_t kDirentFileTypeOffset = 10;
inline constexpr size_t kMaxNameLength = 255;

// ---- xattrs --------------------------------------------------------------------------------

struct DiskXattrIbodyHeader {
  uint32_t name_filter;
  uint8_t shared_count;  // followed by shared_count 4-byte shared xattr ids
  uint8_t reserved[7];
};
static_assert(sizeof(DiskXattrIbodyHeader) == 12);

struct DiskXattrEntry {
  uint8_t name_len;  // followed by the name suffix, then the value
  uint8_t name_index;
  uint16_t value_size;
};
static_assert(sizeof(DiskXattrEntry) == 4);

inline constexpr uint64_t kXattrAlign = 4;
inline constexpr uint64_t kSharedXattrIdUnit = 4;  // a shared id counts 4-byte units

inline constexpr uint8_t kXattrIndexUser = 1;
inline constexpr uint8_t kXattrIndexPosixAclAccess = 2;
inline constexpr uint8_t kXattrIndexPosixAclDefault = 3;
inline constexpr uint8_t kXattrIndexTrusted = 4;
inline constexpr uint8_t kXattrIndexLustre = 5;
inline constexpr uint8_t kXattrIndexSecurity = 6;

// Bytes of the inline xattr area that follows the inode header; 0 when there are no xattrs.
constexpr uint64_t xattr_ibody_size(uint16_t xattr_icount) {
  return xattr_icount == 0 ? 0 : sizeof(DiskXattrIbodyHeader) + (uint64_t{xattr_icount} - 1) * 4;
}

constexpr uint64_t xattr_entry_size(uint8_t name_len, uint16_t value_size) {
  uint64_t raw = sizeof(DiskXattrEntry) + uint64_t{name_len} + uint64_t{value_size};
  return (raw + kXattrAlign - 1) & ~(kXattrAlign - 1);
}

// ---- decoding ------------------------------------------------------------------------------

// Copies sizeof(T) bytes into a T. The caller has checked bytes.size() >= sizeof(T).
template <typename T>
T decode(std::span<const std::byte> bytes) {
  static_assert(std::is_trivially_copyable_v<T>);
  T value{};
  std::memcpy(&value, bytes.data(), sizeof(T));
  return value;
}

}  // namespace ferry::erofs::format
