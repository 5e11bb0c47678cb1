// Opening an image: the superblock (magic, block size, checksum, feature bits) and the device
// table. Everything later decoded on demand relies on the geometry validated here.
#include <sys/stat.h>

#include <bit>
#include <vector>

#include "common/crc32c.h"
#include "erofs/image_impl.h"
#include "erofs/numbers.h"

namespace ferry::erofs {
namespace {

using namespace format;

// Names what the kernel calls each incompat bit, so an operator knows which mkfs option made
// the image unreadable here.
std::string describe_unsupported(uint32_t bits) {
  struct Known {
    uint32_t bit;
    const char* name;
  };
  static constexpr Known kKnown[] = {
      {kIncompatZeroPadding, "LZ4 compression (lz4_0padding, from mkfs.erofs -z)"},
      {kIncompatComprCfgs, "compression configs / big pcluster (compr_cfgs)"},
      {kIncompatZtailpacking, "compressed tail packing (ztailpacking)"},
      {kIncompatFragments, "fragments / dedupe"},
      {kIncompatXattrPrefixes, "long xattr name prefixes (xattr_prefixes)"},
  };
  std::string out;
  for (uint32_t bit = 1; bit != 0; bit <<= 1U) {
    if ((bits & bit) == 0) continue;
    const char* name = "unknown";
    for (const auto& k : kKnown) {
      if (k.bit == bit) name = k.name;
    }
    if (!out.empty()) out += ", ";
    out += std::string(name) + " (incompat " + to_hex(bit) + ")";
  }
  return out;
}

std::string bounded_string(const uint8_t* chars, size_t capacity) {
  size_t n = 0;
  while (n < capacity && chars[n] != 0) ++n;
  return {chars, chars + n};
}

}  // namespace

ImageImpl::ImageImpl(Key /*unused*/, std::shared_ptr<const ByteSource> meta) {
  sources_.emplace_back(std::move(meta));
}

Result<std::shared_ptr<const ErofsImage>> ErofsImage::open(std::shared_ptr<const ByteSource> meta,
                                                           const DeviceResolver& resolve_device) {
  return ImageImpl::open(std::move(meta), resolve_device);
}

Result<std::shared_ptr<const ErofsImage>> ImageImpl::open(std::shared_ptr<const ByteSource> meta,
                                                          const DeviceResolver& resolve_device) {
  if (meta == nullptr) return Error{EINVAL, "opening an EROFS image: no image source given"};
  auto image = std::make_shared<ImageImpl>(Key{}, std::move(meta));
  FERRY_TRY(image->parse_superblock());
  FERRY_TRY(image->load_devices(resolve_device));
  auto root = image->inode(image->info_.root_nid);
  if (!root.ok()) return std::move(root).error().context("reading the root directory");
  if (!S_ISDIR(root->mode)) {
    return image->corrupt("the root inode (nid " + std::to_string(image->info_.root_nid) +
                          ") is not a directory (mode " + to_octal(root->mode) + ")");
  }
  return std::shared_ptr<const ErofsImage>(std::move(image));
}

Error ImageImpl::corrupt(const std::string& what) const {
  return Error{EIO, "corrupt EROFS image '" + meta().name() + "': " + what};
}

Error ImageImpl::corrupt(const Error& cause, const std::string& what) const {
  return Error{cause.code, "corrupt EROFS image '" + meta().name() + "': " + what + ": " + cause.message};
}

Status ImageImpl::parse_superblock() {
  const CheckedSource& src = meta();
  if (!src.contains(kSuperblockOffset, sizeof(DiskSuperblock))) {
    return corrupt("the image is " + std::to_string(src.size()) + " bytes, too small to hold a superblock (" +
                   std::to_string(kSuperblockOffset + sizeof(DiskSuperblock)) + " bytes)");
  }
  std::array<std::byte, sizeof(DiskSuperblock)> scratch{};
  FERRY_ASSIGN(auto raw, src.bytes(kSuperblockOffset, sizeof(DiskSuperblock), scratch));
  const auto sb = decode<DiskSuperblock>(raw);

  if (sb.magic != kMagic) {
    return corrupt("not an EROFS image: magic at offset 1024 is " + to_hex(sb.magic) + ", expected " +
                   to_hex(kMagic));
  }
  if (sb.blkszbits < kMinBlockSizeBits || sb.blkszbits > kMaxBlockSizeBits) {
    return corrupt("block size 2^" + std::to_string(sb.blkszbits) +
                   " is outside the format's range 512..65536");
  }
  block_bits_ = sb.blkszbits;
  const uint64_t block_size = uint64_t{1} << block_bits_;

  if ((sb.feature_compat & kCompatSuperblockChecksum) != 0) {
    // The kernel checksums the superblock's block from offset 1024 on (the whole block when it
    // is not larger than 1024), with the checksum field zeroed, seeded with ~0, no final xor.
    const uint64_t length = block_size > kSuperblockOffset ? block_size - kSuperblockOffset : block_size;
    if (!src.contains(kSuperblockOffset, length)) {
      return corrupt("the superblock checksum covers " + std::to_string(length) +
                     " bytes at offset 1024, past the end of the image (" + std::to_string(src.size()) +
                     " bytes)");
    }
    std::vector<std::byte> block(length);
    FERRY_TRY(src.copy_metadata(kSuperblockOffset, block));
    std::fill_n(block.begin() + kChecksumFieldOffset, sizeof(sb.checksum), std::byte{0});
    const uint32_t computed = crc32c_update(~0U, block);
    if (computed != sb.checksum) {
      return corrupt("superblock checksum mismatch: stored " + to_hex(sb.checksum) + ", computed " +
                     to_hex(computed));
    }
  }

  const uint32_t unsupported = sb.feature_incompat & ~kIncompatSupported;
  if (unsupported != 0) {
    return Error{EOPNOTSUPP, "unsupported EROFS feature: " + describe_unsupported(unsupported) +
                                 " in image '" + src.name() + "'"};
  }
  if (sb.dirblkbits != 0) {
    return Error{EOPNOTSUPP,
                 "unsupported EROFS feature: directory blocks larger than the block size "
                 "(dirblkbits " +
                     std::to_string(sb.dirblkbits) + ") in image '" + src.name() + "'"};
  }

  info_.block_size = static_cast<uint32_t>(block_size);
  info_.blocks = sb.blocks;
  info_.inodes = sb.inos;
  info_.root_nid = sb.root_nid;
  info_.build_time = sb.build_time;
  info_.build_time_nsec = sb.build_time_nsec;
  info_.feature_compat = sb.feature_compat;
  info_.feature_incompat = sb.feature_incompat;
  std::copy(std::begin(sb.uuid), std::end(sb.uuid), info_.uuid.begin());
  info_.volume_name = bounded_string(sb.volume_name, sizeof sb.volume_name);
  meta_base_ = uint64_t{sb.meta_blkaddr} << block_bits_;
  xattr_base_ = uint64_t{sb.xattr_blkaddr} << block_bits_;

  if ((sb.feature_incompat & kIncompatDeviceTable) != 0) {
    // Kept for load_devices(); without the feature bit the kernel ignores these fields.
    device_table_offset_ = uint64_t{sb.devt_slotoff} * kDeviceSlotSize;
    device_count_ = sb.extra_devices;
  }
  return {};
}

Status ImageImpl::load_devices(const DeviceResolver& resolve_device) {
  if (device_count_ == 0) return {};
  const CheckedSource& src = meta();
  const uint64_t table_size = uint64_t{device_count_} * kDeviceSlotSize;
  if (!src.contains(device_table_offset_, table_size)) {
    return corrupt("the device table (" + std::to_string(device_count_) + " slots at offset " +
                   std::to_string(device_table_offset_) + ") lies past the end of the image (" +
                   std::to_string(src.size()) + " bytes)");
  }
  // Chunk indexes keep only the device id bits the device count needs, as the kernel does.
  device_id_mask_ = static_cast<uint16_t>(std::bit_ceil(uint32_t{device_count_} + 1) - 1);

  slots_.reserve(device_count_);
  for (uint32_t i = 0; i < device_count_; ++i) {
    std::array<std::byte, kDeviceSlotSize> scratch{};
    FERRY_ASSIGN(auto raw, src.bytes(device_table_offset_ + i * kDeviceSlotSize, kDeviceSlotSize, scratch));
    const auto disk = decode<DiskDeviceSlot>(raw);
    DeviceSlot slot;
    slot.device_id = static_cast<uint16_t>(i + 1);
    slot.tag = bounded_string(disk.tag, sizeof disk.tag);
    slot.blocks = disk.blocks;
    slot.mapped_blkaddr = disk.mapped_blkaddr;
    if (slot.mapped_blkaddr != 0) any_mapped_device_ = true;
    slots_.push_back(std::move(slot));
  }

  if (!resolve_device) {
    return Error{EINVAL, "EROFS image '" + src.name() + "' needs " + std::to_string(device_count_) +
                             " extra device(s) but no device resolver was given"};
  }
  // `src` refers into sources_, which grows below: keep what is needed of it by value.
  const std::string image_name = src.name();
  sources_.reserve(slots_.size() + 1);
  for (const DeviceSlot& slot : slots_) {
    const std::string what = "resolving device " + std::to_string(slot.device_id) + " (tag '" + slot.tag +
                             "') of EROFS image '" + image_name + "'";
    auto device = resolve_device(slot);
    if (!device.ok()) return std::move(device).error().context(what);
    if (*device == nullptr) return Error{EINVAL, what + ": the resolver returned no source"};
    sources_.emplace_back(std::move(device).value());
  }
  return {};
}

}  // namespace ferry::erofs
