// chunk_places(): the chunk indexes of a chunk-based file, decoded with the same checks as reads.
#include "erofs/image_impl.h"

namespace ferry::erofs {

Result<std::vector<ChunkPlace>> chunk_places(const ErofsImage& image, const Inode& file) {
  const auto* impl = dynamic_cast<const ImageImpl*>(&image);
  if (impl == nullptr) return Error{EINVAL, "chunk_places needs an image opened by ErofsImage::open"};
  return impl->chunk_places(file);
}

Result<std::vector<ChunkPlace>> ImageImpl::chunk_places(const Inode& file) const {
  if (file.datalayout != format::kLayoutChunkBased) {
    return Error{EINVAL, "nid " + std::to_string(file.nid) + " is not a chunk-based file"};
  }
  if (file.size > kMaxFileSize) return corrupt("nid " + std::to_string(file.nid) + " has an impossible size");
  const unsigned chunk_bits = block_bits_ + (file.raw_blkaddr & format::kChunkFormatBlkbitsMask);
  const uint64_t count = chunk_bits >= 64 ? 1 : (file.size + (uint64_t{1} << chunk_bits) - 1) >> chunk_bits;
  std::vector<ChunkPlace> out;
  for (uint64_t i = 0; i < count; ++i) {
    FERRY_ASSIGN(ChunkEntry e, chunk_entry(file, i));  // bounds-checked: a huge count fails early
    if (out.empty()) out.reserve(static_cast<size_t>(std::min<uint64_t>(count, meta().size() / 4)));
    out.push_back({e.device_id, e.blkaddr});
  }
  return out;
}

}  // namespace ferry::erofs
