// ErofsImage: a read-only view of one EROFS image (Nydus RAFS v6 metadata + blob devices).
//
// Knows nothing of FUSE. Everything is derived from the image bytes: an inode is named by its
// nid, a directory position by a cookie; neither needs any table kept per lookup, so a fresh
// process that opens the same image resolves the same names (the failover design rests on it).
//
// Thread-safety: immutable after open(); every method is const and safe from many threads.
// Errors: every byte read is bounds-checked; corrupt or truncated images give Error{EIO, ...}
// naming what is wrong; unsupported features give Error{EOPNOTSUPP, "unsupported EROFS
// feature: ..."}. No method crashes, hangs or reads out of range on any input.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/byte_source.h"
#include "common/result.h"

namespace ferry::erofs {

// Geometry and identity read from the superblock.
struct SuperblockInfo {
  uint32_t block_size = 0;  // bytes, 1 << blkszbits
  uint64_t blocks = 0;      // total blocks of the primary device
  uint64_t inodes = 0;      // inode count
  uint64_t root_nid = 0;
  uint64_t build_time = 0;
  uint32_t build_time_nsec = 0;
  uint32_t feature_compat = 0;
  uint32_t feature_incompat = 0;
  std::array<uint8_t, 16> uuid{};
  std::string volume_name;
};

// One extra device (blob) from the device table. Nydus puts the blob id in the tag.
struct DeviceSlot {
  uint16_t device_id = 0;  // 1-based, as chunk indexes name it
  std::string tag;         // empty when untagged (mkfs.erofs --blobdev)
  uint64_t blocks = 0;
  uint64_t mapped_blkaddr = 0;  // start in the flat address space, 0 when addressed by id
};

// A decoded inode: its attributes plus the reader's private layout data.
struct Inode {
  uint64_t nid = 0;
  uint16_t mode = 0;  // st_mode: type and permission bits
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t mtime = 0;  // seconds; compact inodes take the superblock build time
  uint32_t mtime_nsec = 0;
  uint32_t rdev = 0;  // Linux dev_t encoding (makedev) for char/block devices

  // --- layout, for the reader only ---
  uint8_t datalayout = 0;
  uint8_t header_size = 0;  // 32 (compact) or 64 (extended)
  uint16_t xattr_icount = 0;
  uint32_t raw_blkaddr = 0;  // FLAT_*: first data block; CHUNK_BASED: chunk format word
};

enum class FileType : uint8_t {
  kUnknown = 0,
  kRegular,
  kDirectory,
  kCharDevice,
  kBlockDevice,
  kFifo,
  kSocket,
  kSymlink
};

// One directory entry. `next_cookie` resumes iteration right after this entry; cookies are
// stable for a given image (derived from the entry's position), never 0.
struct DirEntry {
  std::string_view name;
  uint64_t nid = 0;
  FileType type = FileType::kUnknown;
  uint64_t next_cookie = 0;
};

class ErofsImage {
 public:
  // Returns the ByteSource of an extra device. Called once per device slot during open().
  using DeviceResolver = std::function<Result<std::shared_ptr<const ByteSource>>(const DeviceSlot&)>;

  // Parses and validates the superblock (magic, checksum when present, feature bits, block
  // size) and the device table, and resolves each extra device. `meta` should offer view().
  static Result<std::shared_ptr<const ErofsImage>> open(std::shared_ptr<const ByteSource> meta,
                                                        const DeviceResolver& resolve_device);

  virtual ~ErofsImage() = default;

  [[nodiscard]] virtual const SuperblockInfo& superblock() const = 0;
  [[nodiscard]] virtual const std::vector<DeviceSlot>& devices() const = 0;

  // Decodes the inode at nid. Compressed layouts: EOPNOTSUPP naming the layout.
  [[nodiscard]] virtual Result<Inode> inode(uint64_t nid) const = 0;

  // Finds `name` in directory `dir` by binary search over its blocks. ENOENT when absent,
  // ENOTDIR when dir is not a directory.
  [[nodiscard]] virtual Result<uint64_t> lookup(const Inode& dir, std::string_view name) const = 0;

  // Visits the entries of `dir` in on-disk order (which includes "." and ".."), starting after
  // the entry whose next_cookie is `cookie` (0 = from the start), until `visit` returns false
  // or the directory ends.
  virtual Status read_dir(const Inode& dir, uint64_t cookie,
                          const std::function<bool(const DirEntry&)>& visit) const = 0;

  // Reads file content at offset into out; returns the number of bytes read (short only at
  // end of file, 0 at or past it). Holes and sparse chunks read as zeros.
  [[nodiscard]] virtual Result<size_t> read(const Inode& file, uint64_t offset,
                                            std::span<std::byte> out) const = 0;

  // The target of a symlink. EINVAL when not a symlink.
  [[nodiscard]] virtual Result<std::string> read_link(const Inode& link) const = 0;

  // Full names ("user.foo", "security.capability", "system.posix_acl_access", ...) of every
  // xattr, inline and shared, in on-disk order.
  [[nodiscard]] virtual Result<std::vector<std::string>> list_xattrs(const Inode& inode) const = 0;

  // The value of the xattr with this full name; ENODATA when absent.
  [[nodiscard]] virtual Result<std::string> get_xattr(const Inode& inode, std::string_view name) const = 0;

  // SEEK_DATA / SEEK_HOLE semantics over the file's holes (lseek(2)); ENXIO past the end.
  [[nodiscard]] virtual Result<uint64_t> seek(const Inode& file, uint64_t offset, int whence) const = 0;
};

FileType file_type_of(uint16_t mode);

// Where one chunk of a chunk-based file lives: a device (0 = the primary, else the 1-based slot)
// and block address; blkaddr 0xFFFFFFFF is a hole. For tools that report on an image's layout
// (`ferry-image inspect` counts references and dedup from it); the read path never needs it.
struct ChunkPlace {
  uint16_t device_id = 0;
  uint32_t blkaddr = 0;
};

// Every chunk of `file`, in file order. EINVAL when the file is not chunk-based or `image` was
// not made by ErofsImage::open; EIO when its chunk table is corrupt.
Result<std::vector<ChunkPlace>> chunk_places(const ErofsImage& image, const Inode& file);

}  // namespace ferry::erofs
