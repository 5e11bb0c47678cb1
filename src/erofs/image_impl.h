// ImageImpl: the EROFS reader behind ErofsImage::open (private to src/erofs).
//
// Holds only what the superblock and device table say; every other answer is decoded from the
// image bytes on demand, so the object is immutable and safe to share between threads. The
// methods are spread over one file per idea: superblock.cc (open, features, devices),
// inode.cc, block_map.cc (logical file offset -> device bytes), data.cc (read, seek, links),
// dir.cc and xattr.cc. Hot paths (inode, lookup, read) never allocate unless they fail.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "erofs/checked_source.h"
#include "erofs/erofs_image.h"
#include "erofs/format.h"

namespace ferry::erofs {

// The largest file size the reader accepts: what off_t (and the kernel's i_size) can hold.
// Bounding sizes here keeps every block and chunk computation below 2^64.
inline constexpr uint64_t kMaxFileSize = uint64_t{INT64_MAX};

class ImageImpl final : public ErofsImage {
 public:
  struct Key {  // restricts construction to open()
    explicit Key() = default;
  };
  ImageImpl(Key, std::shared_ptr<const ByteSource> meta);

  static Result<std::shared_ptr<const ErofsImage>> open(std::shared_ptr<const ByteSource> meta,
                                                        const DeviceResolver& resolve_device);

  [[nodiscard]] const SuperblockInfo& superblock() const override { return info_; }
  [[nodiscard]] const std::vector<DeviceSlot>& devices() const override { return slots_; }
  [[nodiscard]] Result<Inode> inode(uint64_t nid) const override;
  [[nodiscard]] Result<uint64_t> lookup(const Inode& dir, std::string_view name) const override;
  Status read_dir(const Inode& dir, uint64_t cookie,
                  const std::function<bool(const DirEntry&)>& visit) const override;
  [[nodiscard]] Result<size_t> read(const Inode& file, uint64_t offset,
                                    std::span<std::byte> out) const override;
  [[nodiscard]] Result<std::string> read_link(const Inode& link) const override;
  [[nodiscard]] Result<std::vector<std::string>> list_xattrs(const Inode& inode) const override;
  [[nodiscard]] Result<std::string> get_xattr(const Inode& inode, std::string_view name) const override;
  [[nodiscard]] Result<uint64_t> seek(const Inode& file, uint64_t offset, int whence) const override;
  // chunk_places.cc: the free function chunk_places() of erofs_image.h.
  [[nodiscard]] Result<std::vector<ChunkPlace>> chunk_places(const Inode& file) const;

 private:
  // Where the bytes of a file at one logical offset live, and for how long they run.
  struct Extent {
    const CheckedSource* source = nullptr;  // nullptr: a hole, reads as zeros
    uint64_t physical = 0;                  // offset in source
    uint64_t length = 0;                    // logical bytes from the asked offset, > 0, within i_size
    bool is_inline = false;                 // tail stored after the inode in the metadata
  };

  // One entry of a chunk-based file's chunk table.
  struct ChunkEntry {
    uint16_t device_id = 0;  // masked by the device id mask
    uint32_t blkaddr = 0;    // format::kNullAddr for a hole
  };

  // One directory block, checked: `count` dirents, names up to `length`.
  struct DirBlock {
    const CheckedSource* source = nullptr;
    uint64_t index = 0;
    uint64_t start = 0;  // offset of the block in source
    uint32_t length = 0;
    uint32_t count = 0;
  };

  struct RawDirent {
    std::string_view name;  // points into the map or into the caller's scratch
    uint64_t nid = 0;
    uint8_t file_type = 0;
  };
  using NameScratch = std::array<std::byte, format::kMaxNameLength + 1>;

  // One xattr as stored: its index (prefix), the suffix of its name and where its value is.
  struct RawXattr {
    uint8_t index = 0;
    std::string_view suffix;
    uint64_t value_offset = 0;
    uint16_t value_size = 0;
  };

  // superblock.cc
  Status parse_superblock();
  Status load_devices(const DeviceResolver& resolve_device);

  // inode.cc
  [[nodiscard]] Result<uint64_t> inode_offset(uint64_t nid) const;
  // The offset just past the inode header and its inline xattrs: where an inline tail or a
  // chunk table starts.
  [[nodiscard]] Result<uint64_t> inode_payload_offset(const Inode& inode) const;

  // block_map.cc
  [[nodiscard]] Result<Extent> map(const Inode& inode, uint64_t logical) const;
  [[nodiscard]] Result<Extent> map_flat(const Inode& inode, uint64_t logical) const;
  [[nodiscard]] Result<Extent> map_chunk(const Inode& inode, uint64_t logical) const;
  [[nodiscard]] Result<ChunkEntry> chunk_entry(const Inode& inode, uint64_t chunk) const;
  [[nodiscard]] Result<const CheckedSource*> map_device(const Inode& inode, uint16_t device_id,
                                                        uint64_t& physical) const;

  // dir.cc
  [[nodiscard]] Result<uint64_t> dir_block_count(const Inode& dir) const;
  [[nodiscard]] Result<DirBlock> dir_block(const Inode& dir, uint64_t index) const;
  [[nodiscard]] Result<RawDirent> dirent(const Inode& dir, const DirBlock& block, uint32_t index,
                                         NameScratch& scratch) const;

  // xattr.cc; visit(const RawXattr&) returns false to stop.
  template <typename Visit>
  Status for_each_xattr(const Inode& inode, Visit&& visit) const;
  [[nodiscard]] Result<RawXattr> xattr_entry(const Inode& inode, uint64_t offset, NameScratch& scratch) const;

  // An EIO error for corrupt metadata, naming the image: "corrupt EROFS image '<path>': <what>".
  [[nodiscard]] Error corrupt(const std::string& what) const;
  [[nodiscard]] Error corrupt(const Error& cause, const std::string& what) const;

  [[nodiscard]] const CheckedSource& meta() const { return sources_[0]; }

  SuperblockInfo info_;
  std::vector<DeviceSlot> slots_;
  std::vector<CheckedSource> sources_;  // [0] the primary image, [id] extra device `id`
  unsigned block_bits_ = 0;
  uint64_t meta_base_ = 0;   // byte offset of nid 0
  uint64_t xattr_base_ = 0;  // byte offset of shared xattr id 0
  uint64_t device_table_offset_ = 0;
  uint16_t device_count_ = 0;  // extra devices named by the device table
  uint16_t device_id_mask_ = 0;
  bool any_mapped_device_ = false;
};

}  // namespace ferry::erofs
