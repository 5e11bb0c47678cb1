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

constexpr size_t kMaxQueued = 8;  // chunks in flight to the worker: bounds memory

BlobStore::BlobStore(std::string dir, erofs::Compression compressor, uint32_t chunk_size)
    : dir_(std::move(dir)), compressor_(compressor), chunk_size_(chunk_size), codec_(compressor) {
  worker_ = std::thread([this] { worker_loop(); });
}

BlobStore::~BlobStore() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void BlobStore::worker_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping
    Job job = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    const bool failed = !worker_status_.ok();
    lock.unlock();
    cv_.notify_all();
    Status s = failed ? Status{} : store(job);
    lock.lock();
    if (!s.ok() && worker_status_.ok()) worker_status_ = std::move(s);
    spare_.push_back(std::move(job.data));
    --busy_;
    cv_.notify_all();
  }
}

Status BlobStore::store(Job& job) {
  OpenBlob& blob = *open_;
  erofs::ChunkInfo& info = job.info;
  FERRY_ASSIGN(info.compression, codec_.compress(job.data, scratch_));
  info.blob_offset = blob.file.size();
  if (compressor_ == erofs::Compression::kNone) {
    // The blob is the device: pad each chunk with zeros to its block boundary.
    scratch_.resize((job.data.size() + kBlock - 1) / kBlock * kBlock, std::byte{0});
    info.stored_size = info.size;
  } else {
    info.stored_size = static_cast<uint32_t>(scratch_.size());
  }
  FERRY_TRY(blob.file.write(scratch_));
  blob.hash.update(scratch_);
  blob.chunks.push_back(info);
  return {};
}

Status BlobStore::drain() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && busy_ == 0; });
  return worker_status_;
}

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
    // The worker is idle here (the last layer's blob was drained), so it cannot see this change.
    if (blobs_.size() >= 0xFFFF) return Error{E2BIG, "more than 65535 blobs"};
    FERRY_ASSIGN(OutputFile file, OutputFile::create(dir_, "blob of layer " + std::to_string(layer_ + 1)));
    open_.emplace(OpenBlob{std::move(file), storage::Sha256{}, {}});
    open_device_size_ = 0;
  }
  Job job;
  job.info.device_offset = open_device_size_;
  job.info.size = static_cast<uint32_t>(data.size());
  job.info.digest = digest;
  open_device_size_ += (data.size() + kBlock - 1) / kBlock * kBlock;
  if (open_device_size_ / kBlock > UINT32_MAX - 1) return Error{EFBIG, "a blob device larger than 16 TiB"};
  const ChunkRef ref{static_cast<uint16_t>(blobs_.size() + 1),
                     static_cast<uint32_t>(job.info.device_offset / kBlock)};
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() < kMaxQueued || !worker_status_.ok(); });
    if (!worker_status_.ok()) return worker_status_.error();
    if (!spare_.empty()) {
      job.data = std::move(spare_.back());
      spare_.pop_back();
    }
    job.data.assign(data.begin(), data.end());
    queue_.push_back(std::move(job));
  }
  cv_.notify_all();
  ++stats_.chunks_stored;
  stats_.bytes_stored += data.size();
  known_.emplace(digest, ref);
  return ref;
}

Status BlobStore::end_layer() {
  if (!open_) return {};
  FERRY_TRY(drain());
  OpenBlob blob = std::move(*open_);
  open_.reset();
  BlobResult result;
  result.layer = layer_;
  result.info.digest = blob.hash.finish();
  result.info.blob_size = blob.file.size();
  result.info.device_size = open_device_size_;
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
