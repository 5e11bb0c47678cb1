// Decoding inodes: compact (32-byte) and extended (64-byte) headers, their attributes, and the
// checks that make an Inode safe to hand to the data, directory and xattr readers.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "common/le.h"
#include "erofs/image_impl.h"
#include "erofs/numbers.h"

namespace ferry::erofs {
namespace {

using namespace format;

// On disk a device number uses the kernel's 32-bit "new" encoding (minor bits 0-7, major bits
// 8-19, minor bits 20-31). The kernel splits it into major/minor and stat(2) reports
// makedev(major, minor); doing the same makes st_rdev equal to what a kernel mount shows.
uint32_t decode_rdev(uint32_t raw) {
  const uint32_t major = (raw & 0xfff00U) >> 8U;
  const uint32_t minor = (raw & 0xffU) | ((raw >> 12U) & 0xfff00U);
  // major < 2^12 and minor < 2^20, so the glibc encoding fits in 32 bits.
  return static_cast<uint32_t>(makedev(major, minor));
}

std::string nid_text(uint64_t nid) {
  return "nid " + std::to_string(nid);
}

}  // namespace

FileType file_type_of(uint16_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return FileType::kRegular;
    case S_IFDIR:
      return FileType::kDirectory;
    case S_IFCHR:
      return FileType::kCharDevice;
    case S_IFBLK:
      return FileType::kBlockDevice;
    case S_IFIFO:
      return FileType::kFifo;
    case S_IFSOCK:
      return FileType::kSocket;
    case S_IFLNK:
      return FileType::kSymlink;
    default:
      return FileType::kUnknown;
  }
}

Result<uint64_t> ImageImpl::inode_offset(uint64_t nid) const {
  // Bounding nid by the image size first keeps meta_base_ + nid * 32 from overflowing.
  const uint64_t size = meta().size();
  const uint64_t slots = meta_base_ < size ? (size - meta_base_) >> kInodeSlotBits : 0;
  if (nid >= slots) {
    return corrupt(nid_text(nid) + " lies past the end of the image (metadata starts at offset " +
                   std::to_string(meta_base_) + ", image is " + std::to_string(size) + " bytes)");
  }
  return meta_base_ + (nid << kInodeSlotBits);
}

Result<uint64_t> ImageImpl::inode_payload_offset(const Inode& inode) const {
  FERRY_ASSIGN(uint64_t offset, inode_offset(inode.nid));
  return offset + inode.header_size + xattr_ibody_size(inode.xattr_icount);
}

Result<Inode> ImageImpl::inode(uint64_t nid) const {
  FERRY_ASSIGN(uint64_t offset, inode_offset(nid));
  const CheckedSource& src = meta();
  std::array<std::byte, sizeof(DiskInodeExtended)> scratch{};
  auto head = src.bytes(offset, sizeof(DiskInodeCompact), scratch);
  if (!head.ok()) return corrupt(std::move(head).error(), nid_text(nid) + ": inode header");

  const auto format_bits = load_le<uint16_t>(head->data());
  if ((format_bits & ~kInodeFormatKnownBits) != 0) {
    return Error{EOPNOTSUPP, "unsupported EROFS inode format " + to_hex(format_bits) + " at " +
                                 nid_text(nid) + " in image '" + src.name() + "'"};
  }

  Inode inode;
  inode.nid = nid;
  inode.datalayout = static_cast<uint8_t>((format_bits >> kInodeDataLayoutShift) & kInodeDataLayoutMask);
  uint32_t union_word = 0;
  if ((format_bits & kInodeFormatExtended) != 0) {
    auto full = src.bytes(offset, sizeof(DiskInodeExtended), scratch);
    if (!full.ok()) return corrupt(std::move(full).error(), nid_text(nid) + ": extended inode");
    const auto disk = decode<DiskInodeExtended>(*full);
    inode.header_size = sizeof(DiskInodeExtended);
    inode.xattr_icount = disk.xattr_icount;
    inode.mode = disk.mode;
    inode.nlink = disk.nlink;
    inode.size = disk.size;
    inode.uid = disk.uid;
    inode.gid = disk.gid;
    inode.mtime = disk.mtime;
    inode.mtime_nsec = disk.mtime_nsec;
    union_word = disk.u;
  } else {
    const auto disk = decode<DiskInodeCompact>(*head);
    inode.header_size = sizeof(DiskInodeCompact);
    inode.xattr_icount = disk.xattr_icount;
    inode.mode = disk.mode;
    inode.nlink = disk.nlink;
    inode.size = disk.size;
    inode.uid = disk.uid;
    inode.gid = disk.gid;
    inode.mtime = info_.build_time;  // compact inodes carry no time of their own
    inode.mtime_nsec = info_.build_time_nsec;
    union_word = disk.u;
  }

  if (inode.size > kMaxFileSize) {
    return corrupt(nid_text(nid) + " has an impossible size of " + std::to_string(inode.size) + " bytes");
  }
  const uint64_t xattr_size = xattr_ibody_size(inode.xattr_icount);
  if (!src.contains(offset, inode.header_size + xattr_size)) {
    return corrupt(nid_text(nid) + ": inode with " + std::to_string(xattr_size) +
                   " bytes of inline xattrs at offset " + std::to_string(offset) +
                   " runs past the end of the image (" + std::to_string(src.size()) + " bytes)");
  }

  switch (inode.mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
      inode.raw_blkaddr = union_word;
      break;
    case S_IFCHR:
    case S_IFBLK:
      inode.rdev = decode_rdev(union_word);
      return inode;  // no data: the layout does not apply
    case S_IFIFO:
    case S_IFSOCK:
      return inode;
    default:
      return corrupt(nid_text(nid) + ": bogus file type in mode " + to_octal(inode.mode));
  }

  const uint64_t payload = offset + inode.header_size + xattr_size;
  const uint64_t block_size = uint64_t{1} << block_bits_;
  switch (inode.datalayout) {
    case kLayoutFlatPlain:
      break;
    case kLayoutFlatInline: {
      if (inode.size == 0) break;
      // The last (partial) block sits right after the inode, within one metadata block.
      const uint64_t tail = inode.size - (((inode.size - 1) >> block_bits_) << block_bits_);
      if (!src.contains(payload, tail) || (payload & (block_size - 1)) + tail > block_size) {
        return corrupt(nid_text(nid) + ": inline tail of " + std::to_string(tail) + " bytes at offset " +
                       std::to_string(payload) + " crosses a block boundary or the end of the image");
      }
      break;
    }
    case kLayoutChunkBased: {
      const auto chunk_format = static_cast<uint16_t>(union_word & 0xFFFFU);
      if ((chunk_format & ~kChunkFormatKnownBits) != 0) {
        return Error{EOPNOTSUPP, "unsupported EROFS chunk format " + to_hex(chunk_format) + " at " +
                                     nid_text(nid) + " in image '" + src.name() + "'"};
      }
      // Check the whole chunk table once, so per-read lookups cannot wander off the image and
      // seeks over it stay bounded by the image size.
      const unsigned chunk_bits = block_bits_ + (chunk_format & kChunkFormatBlkbitsMask);
      const uint64_t chunks =
          (inode.size >> chunk_bits) + ((inode.size & ((uint64_t{1} << chunk_bits) - 1)) != 0);
      const uint64_t unit =
          (chunk_format & kChunkFormatIndexes) != 0 ? sizeof(DiskChunkIndex) : kBlockMapEntrySize;
      const uint64_t table = (payload + unit - 1) & ~(unit - 1);
      if (chunks > src.size() / unit || !src.contains(table, chunks * unit)) {
        return corrupt(nid_text(nid) + ": chunk table of " + std::to_string(chunks) + " entries at offset " +
                       std::to_string(table) + " runs past the end of the image (" +
                       std::to_string(src.size()) + " bytes)");
      }
      break;
    }
    case kLayoutCompressedLegacy:
    case kLayoutCompressed:
      return Error{EOPNOTSUPP, "compressed inodes are not supported (" + nid_text(nid) +
                                   " uses data layout " + std::to_string(inode.datalayout) + ") in image '" +
                                   src.name() + "'"};
    default:
      return Error{EOPNOTSUPP, "unsupported EROFS data layout " + std::to_string(inode.datalayout) + " at " +
                                   nid_text(nid) + " in image '" + src.name() + "'"};
  }
  return inode;
}

}  // namespace ferry::erofs
