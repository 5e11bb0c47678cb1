// libFuzzer target for the EROFS reader: the input is an image. It is opened (the same bytes
// serve as every extra device, so chunk indexes naming a device are followed too) and walked
// the way the FUSE layer would: inodes, directory listings with resumes, lookups, reads, seeks,
// symlinks and xattrs. Every walk is bounded in nodes, depth and bytes, so a slow unit means a
// slow reader, not a big input. Half of the inputs are served without view() to cover the
// copy-into-scratch path. Most inputs get their superblock checksum recomputed first: a
// mutation almost always breaks it, and the fuzzer would otherwise never get past it.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/byte_source.h"
#include "common/crc32c.h"
#include "common/memory_source.h"
#include "erofs/erofs_image.h"

namespace {

using ferry::ByteSource;
using ferry::Error;
using ferry::Result;
using ferry::Status;
using namespace ferry::erofs;

constexpr size_t kMaxNodes = 256;
constexpr int kMaxDepth = 8;
constexpr size_t kMaxEntriesPerDir = 512;
constexpr size_t kReadBytes = size_t{16} * 1024;

class Walker {
 public:
  explicit Walker(const ErofsImage& image) : image_(image), buffer_(kReadBytes) {}

  void visit(uint64_t nid, int depth) {
    if (nodes_ >= kMaxNodes || depth > kMaxDepth) return;
    ++nodes_;
    auto inode = image_.inode(nid);
    if (!inode.ok()) return;
    (void)file_type_of(inode->mode);
    xattrs(*inode);
    switch (file_type_of(inode->mode)) {
      case FileType::kRegular:
        data(*inode);
        break;
      case FileType::kSymlink:
        (void)image_.read_link(*inode);
        data(*inode);
        break;
      case FileType::kDirectory:
        directory(*inode, depth);
        break;
      default:
        break;
    }
  }

 private:
  void xattrs(const Inode& inode) {
    auto names = image_.list_xattrs(inode);
    if (names.ok()) {
      for (const auto& name : *names) (void)image_.get_xattr(inode, name);
    }
    (void)image_.get_xattr(inode, "security.capability");
    (void)image_.get_xattr(inode, "system.posix_acl_access");
  }

  void data(const Inode& inode) {
    auto out = std::span(buffer_);
    (void)image_.read(inode, 0, out);
    if (inode.size > 0) {
      (void)image_.read(inode, inode.size - 1, out.first(1));
      (void)image_.read(inode, inode.size / 2, out.first(std::min<size_t>(out.size(), 5000)));
    }
    (void)image_.read(inode, inode.size, out.first(1));
    for (int whence : {SEEK_DATA, SEEK_HOLE}) {
      auto at = image_.seek(inode, 0, whence);
      if (at.ok()) (void)image_.seek(inode, *at, whence == SEEK_DATA ? SEEK_HOLE : SEEK_DATA);
    }
  }

  void directory(const Inode& dir, int depth) {
    std::vector<std::pair<std::string, uint64_t>> children;
    uint64_t middle_cookie = 0;
    (void)image_.read_dir(dir, 0, [&](const DirEntry& entry) {
      children.emplace_back(std::string(entry.name), entry.nid);
      if (children.size() == 3) middle_cookie = entry.next_cookie;
      return children.size() < kMaxEntriesPerDir;
    });
    size_t resumed = 0;
    (void)image_.read_dir(dir, middle_cookie, [&](const DirEntry&) { return ++resumed < 8; });
    (void)image_.lookup(dir, "no such name");
    for (const auto& [name, nid] : children) {
      (void)image_.lookup(dir, name);
      if (name != "." && name != "..") visit(nid, depth + 1);
    }
  }

  const ErofsImage& image_;
  std::vector<std::byte> buffer_;
  size_t nodes_ = 0;
};

// Recomputes the checksum as the kernel verifies it (see superblock.cc) when the block size
// byte is sane and the covered bytes exist.
void fix_checksum(std::vector<std::byte>& image) {
  constexpr size_t kSuperblock = 1024;
  if (image.size() < kSuperblock + 128) return;
  const auto bits = static_cast<unsigned>(image[kSuperblock + 12]);
  if (bits < 9 || bits > 16) return;
  const size_t block = size_t{1} << bits;
  const size_t length = block > kSuperblock ? block - kSuperblock : block;
  if (image.size() < kSuperblock + length) return;
  std::memset(image.data() + kSuperblock + 4, 0, 4);
  const uint32_t crc = ferry::crc32c_update(~0U, std::span(image).subspan(kSuperblock, length));
  std::memcpy(image.data() + kSuperblock + 4, &crc, 4);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {  // NOLINT: libFuzzer entry
  // An exactly-sized copy keeps ASan's view of the input's end.
  std::vector<std::byte> image(size);
  if (size > 0) std::memcpy(image.data(), data, size);
  if (size == 0 || data[size - 1] % 8 != 0) fix_checksum(image);
  std::shared_ptr<const ByteSource> source =
      std::make_shared<ferry::MemorySource>(std::span<const std::byte>(image), "fuzz input", size % 2 == 0);
  auto resolve = [&](const DeviceSlot&) -> Result<std::shared_ptr<const ByteSource>> { return source; };
  auto opened = ErofsImage::open(source, resolve);
  if (!opened.ok()) return 0;
  const ErofsImage& img = **opened;
  (void)img.superblock();
  (void)img.devices();
  Walker(img).visit(img.superblock().root_nid, 0);
  // Nids the tree does not lead to, as a forged or stale request would name.
  for (uint64_t nid : {uint64_t{0}, uint64_t{1}, uint64_t{size}, UINT64_MAX})
    Walker(img).visit(nid, kMaxDepth);
  return 0;
}
