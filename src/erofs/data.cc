// File content: read() through the block map straight into the caller's buffer, seek() over
// the holes of chunk-based files, and symlink targets.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "erofs/image_impl.h"

namespace ferry::erofs {

using namespace format;

namespace {

// PATH_MAX less the terminating NUL: the longest target a symlink can have.
constexpr uint64_t kMaxLinkTarget = 4095;

}  // namespace

Result<size_t> ImageImpl::read(const Inode& file, uint64_t offset, std::span<std::byte> out) const {
  const auto type = file.mode & S_IFMT;
  if (type == S_IFDIR) return Error{EISDIR, "is a directory"};
  if (type != S_IFREG && type != S_IFLNK) return Error{EINVAL, "not a regular file"};
  if (offset >= file.size) return size_t{0};
  const size_t total = static_cast<size_t>(std::min<uint64_t>(out.size(), file.size - offset));
  size_t done = 0;
  while (done < total) {
    const uint64_t logical = offset + done;
    FERRY_ASSIGN(Extent extent, map(file, logical));
    const auto take = static_cast<size_t>(std::min<uint64_t>(extent.length, total - done));
    auto dst = out.subspan(done, take);
    if (extent.source == nullptr) {
      std::fill(dst.begin(), dst.end(), std::byte{0});
    } else {
      Status copied = extent.is_inline ? extent.source->copy_metadata(extent.physical, dst)
                                       : extent.source->copy_data(extent.physical, dst);
      if (!copied.ok()) {
        return std::move(copied).error().context(
            "EROFS image '" + meta().name() + "': nid " + std::to_string(file.nid) + ": reading " +
            std::to_string(take) + " bytes at file offset " + std::to_string(logical));
      }
    }
    done += take;
  }
  return total;
}

Result<std::string> ImageImpl::read_link(const Inode& link) const {
  if ((link.mode & S_IFMT) != S_IFLNK) {
    return Error{EINVAL, "nid " + std::to_string(link.nid) + " is not a symlink"};
  }
  if (link.size == 0 || link.size > kMaxLinkTarget) {
    return corrupt("nid " + std::to_string(link.nid) + ": symlink target of " + std::to_string(link.size) +
                   " bytes (must be 1.." + std::to_string(kMaxLinkTarget) + ")");
  }
  std::string target(static_cast<size_t>(link.size), '\0');
  FERRY_ASSIGN(size_t n, read(link, 0, std::as_writable_bytes(std::span(target))));
  target.resize(n);
  return target;
}

Result<uint64_t> ImageImpl::seek(const Inode& file, uint64_t offset, int whence) const {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) {
    return Error{EINVAL, "seek supports only SEEK_DATA and SEEK_HOLE"};
  }
  if (offset >= file.size) return Error{ENXIO, "past end of file"};
  if (file.datalayout != kLayoutChunkBased) return whence == SEEK_DATA ? offset : file.size;

  // Only null chunks are holes; the implicit hole at end of file starts at i_size.
  const unsigned chunk_bits = block_bits_ + (file.raw_blkaddr & kChunkFormatBlkbitsMask);
  const uint64_t chunk_mask = (uint64_t{1} << chunk_bits) - 1;
  const uint64_t chunks = (file.size >> chunk_bits) + ((file.size & chunk_mask) != 0);
  for (uint64_t chunk = offset >> chunk_bits; chunk < chunks; ++chunk) {
    FERRY_ASSIGN(ChunkEntry entry, chunk_entry(file, chunk));
    const bool hole = entry.blkaddr == kNullAddr;
    if (hole == (whence == SEEK_HOLE)) return std::max(offset, chunk << chunk_bits);
  }
  if (whence == SEEK_DATA) return Error{ENXIO, "no data past offset"};
  return file.size;
}

}  // namespace ferry::erofs
