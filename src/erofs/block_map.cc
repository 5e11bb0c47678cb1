// Mapping a logical file offset to the device bytes that hold it: flat files (contiguous
// blocks, optionally with the last partial block stored inline after the inode), chunk-based
// files (a table of block map entries or chunk indexes, with holes), and the extra devices
// that chunk indexes or mapped block addresses point into, as the kernel's erofs_map_dev does.
#include <algorithm>
#include <limits>

#include "common/le.h"
#include "erofs/image_impl.h"

namespace ferry::erofs {

using namespace format;

Result<ImageImpl::Extent> ImageImpl::map(const Inode& inode, uint64_t logical) const {
  if (inode.size > kMaxFileSize) {
    return corrupt("nid " + std::to_string(inode.nid) + " has an impossible size of " +
                   std::to_string(inode.size) + " bytes");
  }
  if (logical >= inode.size) {
    return Error{EIO, "internal error: mapping offset " + std::to_string(logical) + " past the end of nid " +
                          std::to_string(inode.nid)};
  }
  switch (inode.datalayout) {
    case kLayoutFlatPlain:
    case kLayoutFlatInline:
      return map_flat(inode, logical);
    case kLayoutChunkBased:
      return map_chunk(inode, logical);
    default:
      return Error{EOPNOTSUPP, "nid " + std::to_string(inode.nid) + " has unsupported data layout " +
                                   std::to_string(inode.datalayout)};
  }
}

Result<ImageImpl::Extent> ImageImpl::map_flat(const Inode& inode, uint64_t logical) const {
  const uint64_t block_mask = (uint64_t{1} << block_bits_) - 1;
  const uint64_t blocks = (inode.size >> block_bits_) + ((inode.size & block_mask) != 0);
  const uint64_t plain_blocks = inode.datalayout == kLayoutFlatInline ? blocks - 1 : blocks;
  const uint64_t plain_end = plain_blocks << block_bits_;

  if (inode.datalayout == kLayoutFlatPlain || logical < plain_end) {
    const uint64_t start = uint64_t{inode.raw_blkaddr} << block_bits_;
    if (logical > std::numeric_limits<uint64_t>::max() - start) {
      return corrupt("nid " + std::to_string(inode.nid) + ": data block address overflows at file offset " +
                     std::to_string(logical));
    }
    Extent extent;
    extent.physical = start + logical;
    extent.length = std::min(plain_end, inode.size) - logical;
    FERRY_ASSIGN(extent.source, map_device(inode, 0, extent.physical));
    return extent;
  }

  FERRY_ASSIGN(uint64_t payload, inode_payload_offset(inode));
  Extent extent;
  extent.source = &meta();
  extent.physical = payload + (logical - plain_end);
  extent.length = inode.size - logical;
  extent.is_inline = true;
  // As the kernel insists, the tail stays inside one metadata block.
  const uint64_t tail_start = payload & block_mask;
  if (!meta().contains(extent.physical, extent.length) ||
      tail_start + (inode.size - plain_end) > block_mask + 1) {
    return corrupt("nid " + std::to_string(inode.nid) + ": inline data at offset " +
                   std::to_string(extent.physical) + " crosses a block boundary or the end of the image");
  }
  return extent;
}

Result<ImageImpl::ChunkEntry> ImageImpl::chunk_entry(const Inode& inode, uint64_t chunk) const {
  const auto chunk_format = static_cast<uint16_t>(inode.raw_blkaddr & 0xFFFFU);
  const bool indexes = (chunk_format & kChunkFormatIndexes) != 0;
  const uint64_t unit = indexes ? sizeof(DiskChunkIndex) : kBlockMapEntrySize;
  FERRY_ASSIGN(uint64_t payload, inode_payload_offset(inode));
  const uint64_t table = (payload + unit - 1) & ~(unit - 1);
  if (chunk > meta().size() / unit || !meta().contains(table + chunk * unit, unit)) {
    return corrupt("nid " + std::to_string(inode.nid) + ": chunk " + std::to_string(chunk) +
                   " lies past the end of the image");
  }
  std::array<std::byte, sizeof(DiskChunkIndex)> scratch{};
  FERRY_ASSIGN(auto raw, meta().bytes(table + chunk * unit, unit, scratch));
  ChunkEntry entry;
  if (indexes) {
    const auto index = decode<DiskChunkIndex>(raw);
    entry.device_id = static_cast<uint16_t>(index.device_id & device_id_mask_);
    entry.blkaddr = index.blkaddr;
  } else {
    entry.blkaddr = load_le<uint32_t>(raw.data());
  }
  return entry;
}

Result<ImageImpl::Extent> ImageImpl::map_chunk(const Inode& inode, uint64_t logical) const {
  const unsigned chunk_bits = block_bits_ + (inode.raw_blkaddr & kChunkFormatBlkbitsMask);
  const uint64_t chunk = logical >> chunk_bits;
  const uint64_t within = logical - (chunk << chunk_bits);
  FERRY_ASSIGN(ChunkEntry entry, chunk_entry(inode, chunk));

  Extent extent;
  extent.length = std::min((uint64_t{1} << chunk_bits) - within, inode.size - logical);
  if (entry.blkaddr == kNullAddr) return extent;  // a hole
  extent.physical = (uint64_t{entry.blkaddr} << block_bits_) + within;
  FERRY_ASSIGN(extent.source, map_device(inode, entry.device_id, extent.physical));
  return extent;
}

Result<const CheckedSource*> ImageImpl::map_device(const Inode& inode, uint16_t device_id,
                                                   uint64_t& physical) const {
  if (device_id != 0) {
    if (device_id >= sources_.size()) {
      return corrupt("nid " + std::to_string(inode.nid) + " has data on device " + std::to_string(device_id) +
                     " but the image has " + std::to_string(slots_.size()) + " extra device(s)");
    }
    return &sources_[device_id];
  }
  if (any_mapped_device_) {
    // Device 0 is the flat address space: a device with a mapped_blkaddr owns its range in it.
    for (const DeviceSlot& slot : slots_) {
      if (slot.mapped_blkaddr == 0) continue;
      const uint64_t start = slot.mapped_blkaddr << block_bits_;
      const uint64_t length = slot.blocks << block_bits_;
      if (physical >= start && physical - start < length) {
        physical -= start;
        return &sources_[slot.device_id];
      }
    }
  }
  return &meta();
}

}  // namespace ferry::erofs
