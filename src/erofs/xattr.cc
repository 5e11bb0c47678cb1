// Extended attributes: the inline area after an inode (a header, shared xattr ids, then
// 4-byte-aligned entries) and the shared entries those ids point to. Entries are decoded in the
// flat byte space of the image, so entries and values that cross block boundaries need no
// special case.
#include <array>

#include "common/le.h"
#include "erofs/image_impl.h"

namespace ferry::erofs {

using namespace format;

namespace {

struct Prefix {
  uint8_t index;
  std::string_view text;
  bool whole_name;  // the ACL names are the prefix itself; their stored suffix is empty
};

// The name indexes the kernel exposes. Others (lustre, unknown) are skipped as it skips them.
constexpr std::array<Prefix, 5> kPrefixes = {{
    {kXattrIndexUser, "user.", false},
    {kXattrIndexPosixAclAccess, "system.posix_acl_access", true},
    {kXattrIndexPosixAclDefault, "system.posix_acl_default", true},
    {kXattrIndexTrusted, "trusted.", false},
    {kXattrIndexSecurity, "security.", false},
}};

std::string_view prefix_of(uint8_t index) {
  for (const Prefix& p : kPrefixes) {
    if (p.index == index) return p.text;
  }
  return {};
}

// Splits a full name into (index, suffix); false when no EROFS prefix fits.
bool split_name(std::string_view name, uint8_t& index, std::string_view& suffix) {
  for (const Prefix& p : kPrefixes) {
    if (p.whole_name ? name == p.text : name.starts_with(p.text)) {
      index = p.index;
      suffix = name.substr(p.text.size());
      return true;
    }
  }
  return false;
}

std::string at_nid(uint64_t nid) {
  return "nid " + std::to_string(nid) + ": ";
}

}  // namespace

Result<ImageImpl::RawXattr> ImageImpl::xattr_entry(const Inode& inode, uint64_t offset,
                                                   NameScratch& scratch) const {
  const CheckedSource& src = meta();
  std::array<std::byte, sizeof(DiskXattrEntry)> header_scratch{};
  auto raw = src.bytes(offset, sizeof(DiskXattrEntry), header_scratch);
  if (!raw.ok()) return corrupt(std::move(raw).error(), at_nid(inode.nid) + "xattr entry");
  const auto disk = decode<DiskXattrEntry>(*raw);
  RawXattr entry;
  entry.index = disk.name_index;
  entry.value_offset = offset + sizeof(DiskXattrEntry) + disk.name_len;
  entry.value_size = disk.value_size;
  if (!src.contains(entry.value_offset, entry.value_size)) {
    return corrupt(at_nid(inode.nid) + "xattr entry at offset " + std::to_string(offset) + " with a " +
                   std::to_string(disk.name_len) + "-byte name and a " + std::to_string(disk.value_size) +
                   "-byte value runs past the end of the image");
  }
  FERRY_ASSIGN(auto name, src.bytes(offset + sizeof(DiskXattrEntry), disk.name_len, scratch));
  entry.suffix = {reinterpret_cast<const char*>(name.data()), name.size()};
  return entry;
}

// Visits inline entries first, then shared ones: the order in which the kernel lists and
// searches them.
template <typename Visit>
Status ImageImpl::for_each_xattr(const Inode& inode, Visit&& visit) const {
  if (inode.xattr_icount == 0) return {};
  const CheckedSource& src = meta();
  FERRY_ASSIGN(uint64_t inode_start, inode_offset(inode.nid));
  const uint64_t area_start = inode_start + inode.header_size;
  const uint64_t area_size = xattr_ibody_size(inode.xattr_icount);
  if (!src.contains(area_start, area_size)) {
    return corrupt(at_nid(inode.nid) + "the " + std::to_string(area_size) + "-byte xattr area at offset " +
                   std::to_string(area_start) + " runs past the end of the image");
  }
  std::array<std::byte, sizeof(DiskXattrIbodyHeader)> header_scratch{};
  FERRY_ASSIGN(auto raw_header, src.bytes(area_start, sizeof(DiskXattrIbodyHeader), header_scratch));
  const auto header = decode<DiskXattrIbodyHeader>(raw_header);
  const uint64_t ids_start = area_start + sizeof(DiskXattrIbodyHeader);
  const uint64_t ids_size = uint64_t{header.shared_count} * kSharedXattrIdUnit;
  if (sizeof(DiskXattrIbodyHeader) + ids_size > area_size) {
    return corrupt(at_nid(inode.nid) + std::to_string(header.shared_count) +
                   " shared xattr ids overflow the " + std::to_string(area_size) + "-byte xattr area");
  }

  NameScratch scratch{};
  uint64_t position = ids_start + ids_size;
  uint64_t remaining = area_size - sizeof(DiskXattrIbodyHeader) - ids_size;
  while (remaining > 0) {
    if (remaining < sizeof(DiskXattrEntry)) {
      return corrupt(at_nid(inode.nid) + std::to_string(remaining) +
                     " stray bytes at the end of the xattr area");
    }
    FERRY_ASSIGN(RawXattr entry, xattr_entry(inode, position, scratch));
    const uint64_t entry_size = xattr_entry_size(static_cast<uint8_t>(entry.suffix.size()), entry.value_size);
    if (entry_size > remaining) {
      return corrupt(at_nid(inode.nid) + "inline xattr entry at offset " + std::to_string(position) + " (" +
                     std::to_string(entry_size) + " bytes) overruns the xattr area");
    }
    if (!visit(entry)) return {};
    position += entry_size;
    remaining -= entry_size;
  }

  for (uint32_t i = 0; i < header.shared_count; ++i) {
    std::array<std::byte, 4> id_scratch{};
    FERRY_ASSIGN(auto raw_id, src.bytes(ids_start + uint64_t{i} * kSharedXattrIdUnit, 4, id_scratch));
    const uint64_t entry_offset =
        xattr_base_ + uint64_t{load_le<uint32_t>(raw_id.data())} * kSharedXattrIdUnit;
    FERRY_ASSIGN(RawXattr entry, xattr_entry(inode, entry_offset, scratch));
    if (!visit(entry)) return {};
  }
  return {};
}

Result<std::vector<std::string>> ImageImpl::list_xattrs(const Inode& inode) const {
  std::vector<std::string> names;
  FERRY_TRY(for_each_xattr(inode, [&](const RawXattr& entry) {
    const std::string_view prefix = prefix_of(entry.index);
    if (!prefix.empty()) {
      std::string name;
      name.reserve(prefix.size() + entry.suffix.size());
      name.append(prefix).append(entry.suffix);
      names.push_back(std::move(name));
    }
    return true;
  }));
  return names;
}

Result<std::string> ImageImpl::get_xattr(const Inode& inode, std::string_view name) const {
  uint8_t index = 0;
  std::string_view suffix;
  // A miss is common (security.capability on every exec), so its short message does not allocate.
  if (!split_name(name, index, suffix)) return Error{ENODATA, "no such xattr"};
  std::string value;
  bool found = false;
  Status copied;
  FERRY_TRY(for_each_xattr(inode, [&](const RawXattr& entry) {
    if (entry.index != index || entry.suffix != suffix) return true;
    found = true;
    value.resize(entry.value_size);
    copied = meta().copy_metadata(entry.value_offset, std::as_writable_bytes(std::span(value)));
    return false;
  }));
  if (!found) return Error{ENODATA, "no such xattr"};
  if (!copied.ok()) return corrupt(std::move(copied).error(), at_nid(inode.nid) + "xattr value");
  return value;
}

}  // namespace ferry::erofs
