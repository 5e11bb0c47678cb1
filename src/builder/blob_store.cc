#include "builder/blob_store.h"

#include <algorithm>
#include <cstring>

#include "erofs/format.h"

namespace ferry::builder {
namespace {

constexpr uint64_t kBlock = erofs::kFerryBlockSize;

bool is_zero(std::span<const std::byte> data) {
  // Word-wise: the check runs over every byte of the image.
  const std::byte* p = data.data();
  size_t n = data.size();
  uint64_t acc = 0;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    acc |= w;
    if (acc != 0) return false;
    p += 8;
    n -= 8;
  }
  while (n-- > 0) acc |= static_cast<uint64_t>(*p++);
  return acc == 0;
}

}  // namespace

size_t BlobStore::DigestHash::operator()(const erofs::Digest& d) const noexcept {
  size_t h;
  std::memcpy(&h, d.data(), sizeof h);
  return h;
}

BlobStore::BlobStore(std::string dir, erofs::Compression compressor, uint32_t chunk_size)
    : dir_(std::move(dir)), compressor_(compressor), chunk_size_(chunk_size), codec_(compressor) {}

Status BlobStore::begin_layer(uint32_t layer) {
  FERRY_TRY(end_layer());
  layer_ = layer;
  return {};
}

Result<ChunkRef> BlobStore::add(std::span<const std::byte> data) {
  if (data.empty() || data.size() > chunk_size_) {
    return Error{EINVAL, "internal error: a chunk of " + std::to_string(data.size()) + " bytes"};
  }
  if (is_zero(data)) {
    ++stats_.holes;
    return ChunkRef{};
  }
  ++stats_.chunk_refs;
  stats_.bytes_referenced += data.size();
  const erofs::Digest digest = storage::sha256(data);
  if (auto it = known_.find(digest); it != known_.end()) {
    stats_.bytes_deduplicated += data.size();
    return it->second;
  }
  if (!open_) {
    if (blobs_.size() >= 0xFFFF) return Error{E2BIG, "more than 65535 blobs"};
    FERRY_ASSIGN(OutputFile file, OutputFile::create(dir_, "blob of layer " + std::to_string(layer_ + 1)));
    open_.emplace(OpenBlob{std::move(file), storage::Sha256{}, {}, 0});
  }
  OpenBlob& blob = *open_;
  FERRY_ASSIGN(erofs::Compression how, codec_.compress(data, scratch_));
  erofs::ChunkInfo info;
  info.device_offset = blob.device_size;
  info.blob_offset = blob.file.size();
  info.size = static_cast<uint32_t>(data.size());
  info.compression = how;
  info.digest = digest;
  if (compressor_ == erofs::Compression::kNone) {
    // The blob is the device: pad each chunk with zeros to its block boundary.
    const uint64_t padded = (data.size() + kBlock - 1) / kBlock * kBlock;
    scratch_.resize(padded, std::byte{0});
    std::fill(scratch_.begin() + static_cast<long>(data.size()), scratch_.end(), std::byte{0});
    info.stored_size = info.size;
  } else {
    info.stored_size = static_cast<uint32_t>(scratch_.size());
  }
  FERRY_TRY(blob.file.write(scratch_));
  blob.hash.update(scratch_);
  blob.device_size += (data.size() + kBlock - 1) / kBlock * kBlock;
  if (blob.device_size / kBlock > UINT32_MAX - 1) return Error{EFBIG, "a blob device larger than 16 TiB"};
  blob.chunks.push_back(info);
  ++stats_.chunks_stored;
  stats_.bytes_stored += data.size();

  const ChunkRef ref{static_cast<uint16_t>(blobs_.size() + 1), static_cast<uint32_t>(info.device_offset / kBlock)};
  known_.emplace(digest, ref);
  return ref;
}

Status BlobStore::end_layer() {
  if (!open_) return {};
  OpenBlob blob = std::move(*open_);
  open_.reset();
  BlobResult result;
  result.layer = layer_;
  result.info.digest = blob.hash.finish();
  result.info.blob_size = blob.file.size();
  result.info.device_size = blob.device_size;
  result.info.chunk_count = static_cast<uint32_t>(blob.chunks.size());
  result.info.device_id = static_cast<uint16_t>(blobs_.size() + 1);
  result.info.compressor = compressor_;
  uint64_t first = 0;
  for (const auto& list : chunk_lists_) first += list.size();
  result.info.first_chunk = first;
  result.path = dir_ + "/" + erofs::digest_hex(result.info.digest);
  blobs_.push_back(result);
  chunk_lists_.push_back(std::move(blob.chunks));
  finished_.push_back(std::move(blob.file));
  return {};
}

erofs::ChunkTable BlobStore::table() const {
  erofs::ChunkTable t;
  t.chunk_size = chunk_size_;
  for (const auto& b : blobs_) t.blobs.push_back(b.info);
  for (const auto& list : chunk_lists_) t.chunks.insert(t.chunks.end(), list.begin(), list.end());
  return t;
}

Status BlobStore::commit() {
  FERRY_TRY(end_layer());
  for (size_t i = 0; i < finished_.size(); ++i) FERRY_TRY(finished_[i].commit(blobs_[i].path));
  finished_.clear();
  return {};
}

}  // namespace ferry::builder
