#include "storage/chunked_blob_source.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "storage/blob_chunks.h"
#include "storage/chunk_codec.h"

namespace ferry::storage {

namespace {

constexpr uint64_t kCacheBudget = 4U << 20U;
constexpr unsigned kMinSlots = 2;
constexpr unsigned kMaxSlots = 8;
constexpr uint64_t kEmptyKey = 0;  // slot keys are chunk index + 1

// The stored bytes of a compressed chunk, per thread: grown to the largest chunk read, kept.
std::span<std::byte> stored_scratch(size_t n) {
  thread_local std::vector<std::byte> scratch;
  if (scratch.size() < n) scratch.resize(n);
  return std::span(scratch).first(n);
}

}  // namespace

// One decoded chunk. `key` is written only under the exclusive lock; it is read without the
// lock as a hint (then confirmed under the lock).
struct alignas(64) ChunkedBlobSource::Slot {
  std::shared_mutex mu;
  std::atomic<uint64_t> key{kEmptyKey};
  std::atomic<bool> referenced{false};
  bool valid = false;                 // under mu: data holds the chunk named by key
  std::unique_ptr<std::byte[]> data;  // NOLINT(*-avoid-c-arrays): chunk_size bytes once filled
};

Result<std::shared_ptr<ChunkedBlobSource>> ChunkedBlobSource::open(
    std::shared_ptr<const erofs::ChunkTable> table, uint16_t device_id,
    std::shared_ptr<const StoredChunkReader> stored, Options options) {
  if (table == nullptr || device_id == 0 || device_id > table->blobs.size()) {
    return Error{EINVAL, "the chunk table has no blob for device " + std::to_string(device_id)};
  }
  unsigned slots = options.cache_slots;
  if (slots == 0) {
    const uint64_t fit = kCacheBudget / std::max<uint64_t>(table->chunk_size, 1);
    slots = static_cast<unsigned>(std::clamp<uint64_t>(fit, kMinSlots, kMaxSlots));
  }
  return std::make_shared<ChunkedBlobSource>(Key{}, std::move(table), device_id, std::move(stored), slots);
}

ChunkedBlobSource::ChunkedBlobSource(Key, std::shared_ptr<const erofs::ChunkTable> table, uint16_t device_id,
                                     std::shared_ptr<const StoredChunkReader> stored, unsigned slots)
    : table_(std::move(table)),
      blob_(table_->blobs[device_id - 1U]),
      chunks_(table_->chunks_of(device_id)),
      stored_(std::move(stored)),
      digest_hex_(erofs::digest_hex(blob_.digest)),
      slot_count_(slots),
      slots_(std::make_unique<Slot[]>(slots)) {  // NOLINT(*-avoid-c-arrays)
  name_ = "blob sha256:" + digest_hex_ + " (" + stored_->name() + ")";
  // Slot buffers hold this blob's largest chunk (whatever the table's chunk size says).
  for (const erofs::ChunkInfo& c : chunks_) max_chunk_ = std::max(max_chunk_, c.size);
}

ChunkedBlobSource::~ChunkedBlobSource() = default;

Error ChunkedBlobSource::chunk_error(uint64_t index, const std::string& what) const {
  return storage::chunk_error(digest_hex_, blob_.first_chunk + index, chunks_[index], what);
}

Status ChunkedBlobSource::decode(uint64_t index, std::span<std::byte> out) const {
  const erofs::ChunkInfo& c = chunks_[index];
  const uint64_t table_index = blob_.first_chunk + index;
  if (c.compression == erofs::Compression::kNone) {
    // Stored as is: straight into the destination.
    Status st = stored_->read_stored(table_index, c, out);
    if (!st.ok()) return chunk_error(index, "reading its stored bytes: " + st.error().message);
  } else {
    auto stored = stored_scratch(c.stored_size);
    Status st = stored_->read_stored(table_index, c, stored);
    if (!st.ok()) return chunk_error(index, "reading its stored bytes: " + st.error().message);
    st = decompress_chunk(c.compression, stored, out);
    if (!st.ok()) return chunk_error(index, st.error().message);
  }
  if (sha256(out) != c.digest) {
    return chunk_error(index, "the sha256 of its bytes is not the chunk table's (the blob is damaged)");
  }
  return {};
}

ChunkedBlobSource::Slot& ChunkedBlobSource::victim() const {
  // CLOCK: a slot read since the hand last passed gets a second chance.
  for (unsigned n = 0; n < 2 * slot_count_; ++n) {
    Slot& s = slots_[hand_.fetch_add(1, std::memory_order_relaxed) % slot_count_];
    if (!s.referenced.exchange(false, std::memory_order_relaxed)) return s;
  }
  return slots_[hand_.fetch_add(1, std::memory_order_relaxed) % slot_count_];
}

Status ChunkedBlobSource::copy_cached(uint64_t index, uint64_t within, std::span<std::byte> out) const {
  const uint64_t key = index + 1;
  const uint32_t size = chunks_[index].size;
  auto find = [&]() -> Slot* {
    for (unsigned i = 0; i < slot_count_; ++i) {
      if (slots_[i].key.load(std::memory_order_acquire) == key) return &slots_[i];
    }
    return nullptr;
  };
  // A hit, or a slot another thread is filling with this chunk (then wait for that decode).
  for (int attempt = 0; attempt < 2; ++attempt) {
    Slot* s = find();
    if (s == nullptr) break;
    std::shared_lock lock(s->mu);
    if (s->valid && s->key.load(std::memory_order_relaxed) == key) {
      std::memcpy(out.data(), s->data.get() + within, out.size());
      if (!s->referenced.load(std::memory_order_relaxed))
        s->referenced.store(true, std::memory_order_relaxed);
      return {};
    }
    // Its decode failed or it was evicted: look again, then decode it ourselves.
  }
  Slot& v = victim();
  std::unique_lock lock(v.mu);
  if (!(v.valid && v.key.load(std::memory_order_relaxed) == key)) {
    v.valid = false;
    v.key.store(key, std::memory_order_release);
    if (!v.data) v.data = std::make_unique_for_overwrite<std::byte[]>(max_chunk_);  // NOLINT
    Status st = decode(index, std::span(v.data.get(), size));
    if (!st.ok()) {
      v.key.store(kEmptyKey, std::memory_order_release);
      return st;
    }
    v.valid = true;
  }
  std::memcpy(out.data(), v.data.get() + within, out.size());
  v.referenced.store(true, std::memory_order_relaxed);
  return {};
}

Status ChunkedBlobSource::read_exact(uint64_t offset, std::span<std::byte> out) const {
  if (offset > blob_.device_size || out.size() > blob_.device_size - offset) {
    return past_end_error(name_, offset, out.size(), blob_.device_size);
  }
  while (!out.empty()) {
    const uint64_t index = chunk_at(chunks_, offset);
    if (index == kNoChunk) return no_chunk_error(name_, offset);
    const erofs::ChunkInfo& c = chunks_[index];
    const uint64_t within = offset - c.device_offset;
    const auto take = static_cast<size_t>(std::min<uint64_t>(out.size(), padded_chunk_size(c.size) - within));
    const auto data = static_cast<size_t>(within < c.size ? std::min<uint64_t>(take, c.size - within) : 0);
    if (data > 0) {
      Status st = within == 0 && data == c.size ? decode(index, out.first(data))
                                                : copy_cached(index, within, out.first(data));
      if (!st.ok()) return st;
    }
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(data),
              out.begin() + static_cast<std::ptrdiff_t>(take), std::byte{0});
    offset += take;
    out = out.subspan(take);
  }
  return {};
}

Result<std::shared_ptr<const ByteSource>> open_blob_device(std::shared_ptr<const erofs::ChunkTable> table,
                                                           uint16_t device_id,
                                                           std::shared_ptr<const ByteSource> blob_file) {
  if (table == nullptr || device_id == 0 || device_id > table->blobs.size()) {
    return Error{EIO, "the chunk table has no blob for device " + std::to_string(device_id)};
  }
  const erofs::BlobInfo& blob = table->blobs[device_id - 1U];
  if (blob_file->size() != blob.blob_size) {
    return Error{EIO, "blob file '" + blob_file->name() + "' is " + std::to_string(blob_file->size()) +
                          " bytes, but blob sha256:" + erofs::digest_hex(blob.digest) +
                          " of the chunk table has " + std::to_string(blob.blob_size) +
                          " (truncated, or another blob)"};
  }
  // The chunk table reader guarantees that an uncompressed blob stores every chunk raw at its
  // device offset: the file is the device.
  if (blob.compressor == erofs::Compression::kNone) return blob_file;
  FERRY_ASSIGN(auto source, ChunkedBlobSource::open(std::move(table), device_id,
                                                    std::make_shared<BlobFileReader>(std::move(blob_file))));
  return std::shared_ptr<const ByteSource>(std::move(source));
}

}  // namespace ferry::storage
