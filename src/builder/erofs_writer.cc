// Layout (docs/image-format.md §3): header block, superblock, device table, then the inodes in
// breadth-first order, each followed by its inline xattrs and its chunk indexes or inline tail,
// then the out-of-line directory and symlink blocks, then the chunk table. Two passes: the first
// places every inode (its size depends only on names and counts), the second writes the bytes
// now that every nid is known.
#include "builder/erofs_writer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "common/crc32c.h"
#include "erofs/chunk_table.h"
#include "erofs/format.h"

namespace ferry::builder {
namespace {

using namespace erofs::format;

constexpr uint64_t kBlock = erofs::kFerryBlockSize;
constexpr unsigned kBlockBits = 12;
constexpr uint64_t kInodeSize = sizeof(DiskInodeExtended);
constexpr uint64_t kDeviceTableOffset = kSuperblockOffset + sizeof(DiskSuperblock);

// EROFS file types in dirents.
constexpr uint8_t kFtReg = 1, kFtDir = 2, kFtChr = 3, kFtBlk = 4, kFtFifo = 5, kFtSock = 6, kFtLnk = 7;

uint64_t align(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

uint8_t file_type(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return kFtReg;
    case S_IFDIR:
      return kFtDir;
    case S_IFCHR:
      return kFtChr;
    case S_IFBLK:
      return kFtBlk;
    case S_IFIFO:
      return kFtFifo;
    case S_IFSOCK:
      return kFtSock;
    case S_IFLNK:
      return kFtLnk;
    default:
      return 0;
  }
}

template <typename T>
void put(std::vector<std::byte>& buf, uint64_t offset, const T& value) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::memcpy(buf.data() + offset, &value, sizeof value);
}

struct OutDirent {
  std::string_view name;
  size_t target = 0;  // record index
  uint8_t type = 0;
};

struct Record {
  const Node* node = nullptr;
  std::string path;  // for error messages
  size_t parent = 0;
  uint32_t nlink = 0;
  std::vector<std::byte> xattrs;
  std::vector<OutDirent> dirents;                     // directories, sorted
  std::vector<std::pair<size_t, size_t>> dir_blocks;  // [begin, end) dirents per block
  uint64_t data_size = 0;                             // i_size
  uint8_t layout = kLayoutFlatPlain;
  uint64_t offset = 0;  // of the inode
  uint64_t plain_blocks = 0;
  uint32_t raw_blkaddr = 0;
  uint64_t tail = 0;  // inline bytes
};

Record make_record(const Node* node, std::string path, size_t parent) {
  Record r;
  r.node = node;
  r.path = std::move(path);
  r.parent = parent;
  return r;
}

Result<std::vector<std::byte>> encode_xattrs(const Record& r) {
  std::vector<std::byte> out;
  if (r.node->xattrs.empty()) return out;
  out.resize(sizeof(DiskXattrIbodyHeader));
  for (const auto& [name, value] : r.node->xattrs) {
    auto idx = xattr_name_index(name);
    if (!idx) return Error{EINVAL, "'" + r.path + "': EROFS cannot store xattr '" + name + "'"};
    if (value.size() > UINT16_MAX) {
      return Error{EINVAL, "'" + r.path + "': xattr '" + name + "' is larger than 65535 bytes"};
    }
    DiskXattrEntry e{};
    e.name_len = static_cast<uint8_t>(idx->second.size());
    e.name_index = idx->first;
    e.value_size = static_cast<uint16_t>(value.size());
    const size_t at = out.size();
    out.resize(at + xattr_entry_size(e.name_len, e.value_size), std::byte{0});
    std::memcpy(out.data() + at, &e, sizeof e);
    std::memcpy(out.data() + at + sizeof e, idx->second.data(), idx->second.size());
    std::memcpy(out.data() + at + sizeof e + idx->second.size(), value.data(), value.size());
  }
  if ((out.size() - sizeof(DiskXattrIbodyHeader)) / 4 + 1 > UINT16_MAX) {
    return Error{EINVAL, "'" + r.path + "': its xattrs take more room than an EROFS inode has"};
  }
  return out;
}

// Greedy packing of sorted dirents into blocks; returns i_size.
uint64_t pack_dir(Record& r) {
  r.dir_blocks.clear();
  size_t begin = 0;
  uint64_t used = 0;
  for (size_t i = 0; i < r.dirents.size(); ++i) {
    const uint64_t need = kDirentSize + r.dirents[i].name.size();
    if (used + need > kBlock) {
      r.dir_blocks.emplace_back(begin, i);
      begin = i;
      used = 0;
    }
    used += need;
  }
  r.dir_blocks.emplace_back(begin, r.dirents.size());
  return (r.dir_blocks.size() - 1) * kBlock + used;
}

void write_dir_data(const Record& r, const std::vector<Record>& recs, std::vector<std::byte>& data) {
  data.assign(r.data_size, std::byte{0});
  for (size_t b = 0; b < r.dir_blocks.size(); ++b) {
    const auto [begin, end] = r.dir_blocks[b];
    const uint64_t base = b * kBlock;
    uint64_t name_at = kDirentSize * (end - begin);
    for (size_t i = begin; i < end; ++i) {
      const OutDirent& d = r.dirents[i];
      const uint64_t at = base + kDirentSize * (i - begin);
      put<uint64_t>(data, at + kDirentNidOffset, recs[d.target].offset >> kInodeSlotBits);
      put<uint16_t>(data, at + kDirentNameoffOffset, static_cast<uint16_t>(name_at));
      put<uint8_t>(data, at + kDirentFileTypeOffset, d.type);
      std::memcpy(data.data() + base + name_at, d.name.data(), d.name.size());
      name_at += d.name.size();
    }
  }
}

uint32_t encode_rdev(uint32_t major, uint32_t minor) {
  return (minor & 0xffU) | (major << 8U) | ((minor & ~0xffU) << 12U);
}

}  // namespace

std::optional<std::pair<uint8_t, std::string_view>> xattr_name_index(std::string_view name) {
  struct Prefix {
    std::string_view text;
    uint8_t index;
    bool whole;  // the full name, no suffix
  };
  static constexpr Prefix kPrefixes[] = {
      {"user.", kXattrIndexUser, false},
      {"system.posix_acl_access", kXattrIndexPosixAclAccess, true},
      {"system.posix_acl_default", kXattrIndexPosixAclDefault, true},
      {"trusted.", kXattrIndexTrusted, false},
      {"security.", kXattrIndexSecurity, false},
  };
  for (const auto& p : kPrefixes) {
    if (p.whole ? name == p.text : (name.size() > p.text.size() && name.starts_with(p.text))) {
      std::string_view suffix = name.substr(p.text.size());
      if (suffix.size() > 255) return std::nullopt;
      return std::make_pair(p.index, suffix);
    }
  }
  return std::nullopt;
}

Result<Bootstrap> write_bootstrap(const BootstrapSpec& spec) {
  if (spec.root == nullptr || !spec.root->is_dir())
    return Error{EINVAL, "the image root must be a directory"};
  if (spec.devices.size() > 0xFFFF) return Error{EFBIG, "more than 65535 blobs"};
  const unsigned chunk_bits = static_cast<unsigned>(std::countr_zero(spec.chunk_size));
  if (spec.chunk_size < kBlock || std::popcount(spec.chunk_size) != 1 ||
      chunk_bits - kBlockBits > kChunkFormatBlkbitsMask) {
    return Error{EINVAL, "chunk size " + std::to_string(spec.chunk_size) + " is not a power of two >= 4096"};
  }

  // Pass 1a: records, breadth first; hard links share one record.
  std::vector<Record> recs;
  std::unordered_map<const Node*, size_t> index;
  recs.push_back(make_record(spec.root, "/", 0));
  index.emplace(spec.root, 0);
  for (size_t i = 0; i < recs.size(); ++i) {
    if (!recs[i].node->is_dir()) continue;
    const Node* dir = recs[i].node;
    std::vector<OutDirent> ents;
    ents.reserve(dir->children.size() + 2);
    ents.push_back({".", i, kFtDir});
    ents.push_back({"..", recs[i].parent, kFtDir});
    uint32_t subdirs = 0;
    for (const auto& [name, dirent] : dir->children) {
      const Node* child = dirent.node.get();
      auto [it, fresh] = index.emplace(child, recs.size());
      if (fresh) {
        recs.push_back(make_record(child, (i == 0 ? "" : recs[i].path) + "/" + name, i));
      }
      ++recs[it->second].nlink;
      if (child->is_dir()) ++subdirs;
      const uint8_t ft = file_type(child->mode);
      if (ft == 0) return Error{EINVAL, "'" + recs[it->second].path + "' has an unknown file type"};
      ents.push_back({name, it->second, ft});
    }
    std::sort(ents.begin(), ents.end(),
              [](const OutDirent& a, const OutDirent& b) { return a.name < b.name; });
    recs[i].dirents = std::move(ents);
    recs[i].nlink = 2 + subdirs;
  }

  // Pass 1b: sizes and places.
  uint64_t cursor = kDeviceTableOffset + spec.devices.size() * kDeviceSlotSize;
  for (Record& r : recs) {
    FERRY_ASSIGN(r.xattrs, encode_xattrs(r));
    const uint64_t base = kInodeSize + r.xattrs.size();
    uint64_t record_size = base;
    const uint32_t type = r.node->mode & S_IFMT;
    bool inline_tail = false;
    if (type == S_IFREG) {
      r.layout = kLayoutChunkBased;
      r.data_size = r.node->size;
      const uint64_t chunks = (r.data_size + spec.chunk_size - 1) >> chunk_bits;
      if (chunks != r.node->chunks.size()) {
        return Error{EINVAL, "internal error: '" + r.path + "' has " + std::to_string(r.node->chunks.size()) +
                                 " chunks for " + std::to_string(r.data_size) + " bytes"};
      }
      record_size = align(base, sizeof(DiskChunkIndex)) + chunks * sizeof(DiskChunkIndex);
    } else if (type == S_IFDIR || type == S_IFLNK) {
      r.data_size = type == S_IFDIR ? pack_dir(r) : r.node->link_target.size();
      const uint64_t tail = r.data_size % kBlock;
      if (tail != 0 && base + tail <= kBlock) {
        inline_tail = true;
        r.layout = kLayoutFlatInline;
        r.tail = tail;
        r.plain_blocks = r.data_size / kBlock;
        record_size = base + tail;
      } else {
        r.layout = kLayoutFlatPlain;
        r.plain_blocks = align(r.data_size, kBlock) / kBlock;
      }
    }
    // The kernel wants an inline tail in the inode's block; keep header and xattrs in one too.
    const uint64_t keep = inline_tail ? record_size : base;
    if (keep <= kBlock && cursor % kBlock + keep > kBlock) cursor = align(cursor, kBlock);
    r.offset = cursor;
    cursor = align(cursor + record_size, uint64_t{1} << kInodeSlotBits);
  }
  if ((recs[0].offset >> kInodeSlotBits) > UINT16_MAX)
    return Error{EFBIG, "too many blobs for the root inode's nid"};

  uint64_t block = align(cursor, kBlock) / kBlock;
  for (Record& r : recs) {
    if (r.plain_blocks == 0) continue;
    r.raw_blkaddr = static_cast<uint32_t>(block);
    block += r.plain_blocks;
  }
  Bootstrap out;
  out.inodes = recs.size();
  if (!spec.chunk_table.empty()) {
    out.table_offset = block * kBlock;
    block += align(spec.chunk_table.size(), kBlock) / kBlock;
  }
  if (block > UINT32_MAX) return Error{EFBIG, "the bootstrap would exceed 2^32 blocks"};
  std::vector<std::byte>& buf = out.bytes;
  buf.assign(block * kBlock, std::byte{0});

  // Pass 2: bytes.
  std::vector<std::byte> data;
  for (const Record& r : recs) {
    const uint32_t type = r.node->mode & S_IFMT;
    DiskInodeExtended d{};
    d.format = static_cast<uint16_t>(kInodeFormatExtended | (r.layout << kInodeDataLayoutShift));
    d.xattr_icount = r.xattrs.empty()
                         ? 0
                         : static_cast<uint16_t>((r.xattrs.size() - sizeof(DiskXattrIbodyHeader)) / 4 + 1);
    d.mode = static_cast<uint16_t>(r.node->mode);
    d.size = r.data_size;
    d.ino = static_cast<uint32_t>(&r - recs.data() + 1);
    d.uid = r.node->uid;
    d.gid = r.node->gid;
    d.mtime = static_cast<uint64_t>(r.node->mtime);
    d.mtime_nsec = r.node->mtime_nsec;
    d.nlink = r.nlink;
    if (type == S_IFREG) {
      d.u = kChunkFormatIndexes | (chunk_bits - kBlockBits);
    } else if (type == S_IFCHR || type == S_IFBLK) {
      d.u = encode_rdev(r.node->rdev_major, r.node->rdev_minor);
    } else {
      d.u = r.raw_blkaddr;
    }
    put(buf, r.offset, d);
    if (!r.xattrs.empty()) std::memcpy(buf.data() + r.offset + kInodeSize, r.xattrs.data(), r.xattrs.size());
    const uint64_t payload = r.offset + kInodeSize + r.xattrs.size();

    if (type == S_IFREG) {
      uint64_t at = align(payload, sizeof(DiskChunkIndex));
      for (const ChunkRef& c : r.node->chunks) {
        const DiskChunkIndex idx{0, c.blkaddr == kNullAddr ? uint16_t{0} : c.device_id, c.blkaddr};
        put(buf, at, idx);
        at += sizeof idx;
      }
      continue;
    }
    if (type != S_IFDIR && type != S_IFLNK) continue;
    if (type == S_IFDIR) {
      write_dir_data(r, recs, data);
    } else {
      data.resize(r.data_size);
      std::memcpy(data.data(), r.node->link_target.data(), r.data_size);
    }
    const uint64_t plain_bytes = std::min<uint64_t>(r.plain_blocks * kBlock, r.data_size);
    if (plain_bytes > 0) std::memcpy(buf.data() + uint64_t{r.raw_blkaddr} * kBlock, data.data(), plain_bytes);
    if (r.tail > 0) std::memcpy(buf.data() + payload, data.data() + plain_bytes, r.tail);
  }

  for (size_t i = 0; i < spec.devices.size(); ++i) {
    DiskDeviceSlot slot{};
    const auto& tag = spec.devices[i].tag;
    std::memcpy(slot.tag, tag.data(), std::min(tag.size(), sizeof slot.tag));
    slot.blocks = spec.devices[i].blocks;
    put(buf, kDeviceTableOffset + i * kDeviceSlotSize, slot);
  }
  if (!spec.chunk_table.empty()) {
    std::memcpy(buf.data() + out.table_offset, spec.chunk_table.data(), spec.chunk_table.size());
    const auto header = erofs::encode_ferry_header(out.table_offset, spec.chunk_table);
    std::memcpy(buf.data(), header.data(), header.size());
  }

  DiskSuperblock sb{};
  sb.magic = kMagic;
  sb.feature_compat = kCompatSuperblockChecksum;
  sb.blkszbits = kBlockBits;
  sb.root_nid = static_cast<uint16_t>(recs[0].offset >> kInodeSlotBits);
  sb.inos = recs.size();
  sb.blocks = static_cast<uint32_t>(block);
  sb.meta_blkaddr = 0;
  sb.xattr_blkaddr = 0;
  std::memcpy(sb.uuid, spec.uuid.data(), sizeof sb.uuid);
  sb.feature_incompat = kIncompatChunkedFile | (spec.devices.empty() ? 0U : kIncompatDeviceTable);
  sb.extra_devices = static_cast<uint16_t>(spec.devices.size());
  sb.devt_slotoff = static_cast<uint16_t>(kDeviceTableOffset / kDeviceSlotSize);
  put(buf, kSuperblockOffset, sb);
  const uint32_t checksum = crc32c_update(
      ~0U, std::span<const std::byte>(buf).subspan(kSuperblockOffset, kBlock - kSuperblockOffset));
  put(buf, kSuperblockOffset + kChecksumFieldOffset, checksum);
  return out;
}

}  // namespace ferry::builder
