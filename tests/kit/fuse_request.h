// fuse_request: the bytes of one kernel FUSE request (header + arguments), as /dev/fuse
// would deliver them, for driving FuseServer::handle() in tests.
#pragma once

#include <linux/fuse.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace ferry::testkit {

inline std::vector<std::byte> fuse_request(uint32_t opcode, uint64_t nodeid, uint64_t unique, const void* args,
                                           size_t len) {
  fuse_in_header h{};
  h.len = static_cast<uint32_t>(sizeof h + len);
  h.opcode = opcode;
  h.unique = unique;
  h.nodeid = nodeid;
  std::vector<std::byte> out(sizeof h + len);
  std::memcpy(out.data(), &h, sizeof h);
  if (len != 0) std::memcpy(out.data() + sizeof h, args, len);
  return out;
}

// A request whose argument is `prefix` followed by a NUL-terminated name (LOOKUP, GETXATTR).
template <typename Prefix = std::byte>
std::vector<std::byte> fuse_request_named(uint32_t opcode, uint64_t nodeid, uint64_t unique, std::string_view name,
                                          const Prefix* prefix = nullptr) {
  const size_t head = prefix != nullptr ? sizeof(Prefix) : 0;
  std::vector<std::byte> args(head + name.size() + 1);
  if (prefix != nullptr) std::memcpy(args.data(), prefix, head);
  std::ranges::copy(std::as_bytes(std::span(name)), args.begin() + static_cast<std::ptrdiff_t>(head));
  return fuse_request(opcode, nodeid, unique, args.data(), args.size());
}

}  // namespace ferry::testkit
