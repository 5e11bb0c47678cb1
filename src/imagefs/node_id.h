// NodeId: how ImageFs names inodes to the kernel, derived from the image alone.
//
// The kernel holds node ids (from LOOKUP and READDIRPLUS) for as long as it likes, across a
// crash or an upgrade of the daemon. A successor process must resolve every one of them with
// no table recorded per lookup, so a node id is computed from where the inode lives:
//
//   bits 63..40  image slot (1 .. 2^23-1): the index of the attached image, never reused while
//                the connection lives; saved with the daemon's state
//   bits 39..0   the inode's nid in that image (its position in the metadata area)
//   nodeid 1     the FUSE root (FUSE_ROOT_ID): the dedicated image's root inode, or the
//                shared daemon's pseudo root directory
//
// Bit 63 stays 0. File handles carry nothing (0): everything an open file needs is the node
// id. Directory offsets are the EROFS reader's position cookies. All three survive takeover.
#pragma once

#include <cstdint>
#include <optional>

namespace ferry::imagefs {

inline constexpr uint64_t kRootNodeId = 1;
inline constexpr unsigned kNidBits = 40;
inline constexpr uint64_t kNidMask = (uint64_t{1} << kNidBits) - 1;
inline constexpr uint32_t kMaxSlot = (uint32_t{1} << 23U) - 1;

struct NodeRef {
  uint32_t slot = 0;
  uint64_t nid = 0;
  friend bool operator==(const NodeRef&, const NodeRef&) = default;
};

// Encodes an image inode; nullopt when it cannot be represented (corrupt nid or slot).
inline std::optional<uint64_t> encode_node(NodeRef ref) {
  if (ref.slot == 0 || ref.slot > kMaxSlot || ref.nid > kNidMask) return std::nullopt;
  return (uint64_t{ref.slot} << kNidBits) | ref.nid;
}

// Decodes a non-root node id; nullopt for ids this encoding never produces.
inline std::optional<NodeRef> decode_node(uint64_t nodeid) {
  uint64_t slot = nodeid >> kNidBits;
  if (slot == 0 || slot > kMaxSlot) return std::nullopt;
  return NodeRef{static_cast<uint32_t>(slot), nodeid & kNidMask};
}

}  // namespace ferry::imagefs
