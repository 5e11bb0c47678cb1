#include "kit/stalling_filesystem.h"

#include <chrono>
#include <string_view>
#include <thread>

namespace ferry::testkit {

uint64_t StallingFilesystem::stall_node(const fuse::RequestContext& ctx) {
  std::call_once(resolved_, [&] {
    uint64_t node = 1;  // FUSE_ROOT_ID
    std::string_view rest = path_;
    while (!rest.empty()) {
      size_t slash = rest.find('/');
      std::string_view part = rest.substr(0, slash);
      rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
      if (part.empty()) continue;
      auto e = inner().lookup(ctx, node, part);
      if (!e.ok() || e->nodeid == 0) return;  // no such path: nothing stalls
      node = e->nodeid;
    }
    node_.store(node);
  });
  return node_.load();
}

Result<size_t> StallingFilesystem::read(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t fh,
                                        uint64_t offset, std::span<std::byte> out) {
  if (nodeid == stall_node(ctx)) {
    stalled_.fetch_add(1);
    while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return ForwardingFilesystem::read(ctx, nodeid, fh, offset, out);
}

}  // namespace ferry::testkit
