// Directories: checked decoding of dirent blocks, lookup by binary search, and iteration with
// position-derived cookies.
//
// Cookie encoding: cookie = block_index * 65536 + entry_index + 1, the position of the entry
// *after* the one it is attached to. A block holds at most 65535 / 12 dirents, so the entry
// part never overflows into the block part; 0 is (block 0, entry 0), the start. Resuming at a
// cookie whose entry index is past its block's last entry continues with the next block.
// Cookies need no table, survive a restart of the process and stay below 2^63 (directories
// are limited to 2^47 blocks), so they fit a signed FUSE offset.
#include <sys/stat.h>

#include "common/le.h"
#include "erofs/image_impl.h"

namespace ferry::erofs {

using namespace format;

namespace {

constexpr unsigned kCookieEntryBits = 16;
constexpr uint64_t kCookieEntryMask = (uint64_t{1} << kCookieEntryBits) - 1;
constexpr uint64_t kMaxDirBlocks = uint64_t{1} << 47;

std::string where(uint64_t nid, uint64_t block) {
  return "directory nid " + std::to_string(nid) + ", block " + std::to_string(block);
}

}  // namespace

Result<uint64_t> ImageImpl::dir_block_count(const Inode& dir) const {
  if ((dir.mode & S_IFMT) != S_IFDIR) return Error{ENOTDIR, "not a directory"};
  const uint64_t block_mask = (uint64_t{1} << block_bits_) - 1;
  const uint64_t blocks = (dir.size >> block_bits_) + ((dir.size & block_mask) != 0);
  if (blocks >= kMaxDirBlocks) {
    return corrupt("directory nid " + std::to_string(dir.nid) + " claims an impossible size of " +
                   std::to_string(dir.size) + " bytes");
  }
  return blocks;
}

Result<ImageImpl::DirBlock> ImageImpl::dir_block(const Inode& dir, uint64_t index) const {
  const uint64_t start = index << block_bits_;
  DirBlock block;
  block.index = index;
  block.length = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{1} << block_bits_, dir.size - start));
  FERRY_ASSIGN(Extent extent, map(dir, start));
  if (extent.source == nullptr) return corrupt(where(dir.nid, index) + " is a hole");
  if (extent.length < block.length || !extent.source->contains(extent.physical, block.length)) {
    return corrupt(where(dir.nid, index) + " at offset " + std::to_string(extent.physical) +
                   " runs past the end of '" + extent.source->name() + "'");
  }
  block.source = extent.source;
  block.start = extent.physical;
  if (block.length < kDirentSize) {
    return corrupt(where(dir.nid, index) + " is " + std::to_string(block.length) +
                   " bytes, too short for a dirent");
  }
  std::array<std::byte, 2> scratch{};
  FERRY_ASSIGN(auto raw, block.source->bytes(block.start + kDirentNameoffOffset, 2, scratch));
  const auto first_name = load_le<uint16_t>(raw.data());
  if (first_name < kDirentSize || first_name >= block.length) {
    return corrupt(where(dir.nid, index) + " has an invalid first name offset " + std::to_string(first_name));
  }
  block.count = first_name / kDirentSize;
  return block;
}

Result<ImageImpl::RawDirent> ImageImpl::dirent(const Inode& dir, const DirBlock& block, uint32_t index,
                                               NameScratch& scratch) const {
  // Reads the dirent plus the next one's nameoff, which is where this name ends.
  const bool last = index + 1 >= block.count;
  const uint32_t header_bytes = last ? kDirentSize : kDirentSize + kDirentNameoffOffset + 2;
  std::array<std::byte, size_t{2} * kDirentSize> header_scratch{};
  FERRY_ASSIGN(auto raw, block.source->bytes(block.start + uint64_t{index} * kDirentSize, header_bytes,
                                             header_scratch));
  RawDirent entry;
  entry.nid = load_le<uint64_t>(raw.data() + kDirentNidOffset);
  entry.file_type = static_cast<uint8_t>(raw[kDirentFileTypeOffset]);
  const uint32_t name_start = load_le<uint16_t>(raw.data() + kDirentNameoffOffset);
  const uint32_t limit =
      last ? block.length : load_le<uint16_t>(raw.data() + kDirentSize + kDirentNameoffOffset);
  if (name_start < block.count * kDirentSize || limit > block.length || name_start >= limit) {
    return corrupt(where(dir.nid, block.index) + ", entry " + std::to_string(index) + ": name bounds " +
                   std::to_string(name_start) + ".." + std::to_string(limit) + " are invalid");
  }
  // The last name runs to the first NUL or to the end of the block; one byte more than the
  // longest name is enough to tell.
  const uint32_t available = limit - name_start;
  if (!last && available > kMaxNameLength) {
    return corrupt(where(dir.nid, block.index) + ", entry " + std::to_string(index) + ": name of " +
                   std::to_string(available) + " bytes is too long");
  }
  const uint32_t to_read = last ? std::min<uint32_t>(available, kMaxNameLength + 1) : available;
  FERRY_ASSIGN(auto name_bytes, block.source->bytes(block.start + name_start, to_read, scratch));
  size_t name_length = name_bytes.size();
  if (last) {
    name_length = 0;
    while (name_length < name_bytes.size() && name_bytes[name_length] != std::byte{0}) ++name_length;
  }
  if (name_length == 0 || name_length > kMaxNameLength) {
    return corrupt(where(dir.nid, block.index) + ", entry " + std::to_string(index) +
                   ": name is empty or longer than " + std::to_string(kMaxNameLength) + " bytes");
  }
  entry.name = {reinterpret_cast<const char*>(name_bytes.data()), name_length};
  return entry;
}

Result<uint64_t> ImageImpl::lookup(const Inode& dir, std::string_view name) const {
  FERRY_ASSIGN(uint64_t blocks, dir_block_count(dir));
  if (name.size() > kMaxNameLength) return Error{ENAMETOOLONG, "name too long"};
  // Short messages stay in std::string's inline buffer: a miss must not allocate, negative
  // lookups are frequent (PATH searches, probing for config files).
  if (name.empty()) return Error{ENOENT, "no such entry"};

  NameScratch scratch{};
  // Names are sorted across blocks: find the last block whose first name is <= name.
  uint64_t low = 0;
  uint64_t high = blocks;
  DirBlock candidate;
  bool have_candidate = false;
  while (low < high) {
    const uint64_t mid = low + (high - low) / 2;
    FERRY_ASSIGN(DirBlock block, dir_block(dir, mid));
    FERRY_ASSIGN(RawDirent first, dirent(dir, block, 0, scratch));
    const int order = name.compare(first.name);
    if (order == 0) return first.nid;
    if (order > 0) {
      candidate = block;
      have_candidate = true;
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  if (!have_candidate) return Error{ENOENT, "no such entry"};

  uint32_t first = 1;  // entry 0 compared above
  uint32_t last = candidate.count;
  while (first < last) {
    const uint32_t mid = first + (last - first) / 2;
    FERRY_ASSIGN(RawDirent entry, dirent(dir, candidate, mid, scratch));
    const int order = name.compare(entry.name);
    if (order == 0) return entry.nid;
    if (order > 0) {
      first = mid + 1;
    } else {
      last = mid;
    }
  }
  return Error{ENOENT, "no such entry"};
}

Status ImageImpl::read_dir(const Inode& dir, uint64_t cookie,
                           const std::function<bool(const DirEntry&)>& visit) const {
  FERRY_ASSIGN(uint64_t blocks, dir_block_count(dir));
  NameScratch scratch{};
  auto entry_index = static_cast<uint32_t>(cookie & kCookieEntryMask);
  for (uint64_t index = cookie >> kCookieEntryBits; index < blocks; ++index, entry_index = 0) {
    FERRY_ASSIGN(DirBlock block, dir_block(dir, index));
    for (uint32_t i = entry_index; i < block.count; ++i) {
      FERRY_ASSIGN(RawDirent raw, dirent(dir, block, i, scratch));
      DirEntry entry;
      entry.name = raw.name;
      entry.nid = raw.nid;
      entry.type = raw.file_type <= static_cast<uint8_t>(FileType::kSymlink)
                       ? static_cast<FileType>(raw.file_type)
                       : FileType::kUnknown;
      entry.next_cookie = (index << kCookieEntryBits) + i + 1;
      if (!visit(entry)) return {};
    }
  }
  return {};
}

}  // namespace ferry::erofs
