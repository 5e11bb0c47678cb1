#include "storage/registry_chunk_reader.h"

#include "common/live_list.h"

namespace ferry::storage {
namespace {

LiveList<const RegistryChunkReader>& readers() {
  static LiveList<const RegistryChunkReader> list;
  return list;
}

}  // namespace

std::shared_ptr<const RegistryChunkReader> RegistryChunkReader::open(std::shared_ptr<const RemoteBlobFetcher> fetcher,
                                                                     std::string digest, uint64_t blob_size) {
  auto reader = std::make_shared<const RegistryChunkReader>(std::move(fetcher), std::move(digest), blob_size);
  readers().add(reader);
  return reader;
}

std::vector<std::shared_ptr<const RegistryChunkReader>> live_registry_readers() { return readers().snapshot(); }

RegistryChunkReader::RegistryChunkReader(std::shared_ptr<const RemoteBlobFetcher> fetcher, std::string digest,
                                         uint64_t blob_size)
    : fetcher_(std::move(fetcher)), digest_(std::move(digest)), blob_size_(blob_size) {
  name_ = fetcher_->name() + ", blob " + digest_;
}

Status RegistryChunkReader::fetch(uint64_t first, size_t count, uint64_t offset, std::span<std::byte> out) const {
  const auto what = [&] {
    return count == 1 ? "chunk " + std::to_string(first)
                      : "chunks " + std::to_string(first) + ".." + std::to_string(first + count - 1);
  };
  if (offset > blob_size_ || out.size() > blob_size_ - offset) {
    return Error{EIO, name_ + ", " + what() + ": bytes " + std::to_string(offset) + "+" + std::to_string(out.size()) +
                          " lie beyond the blob's " + std::to_string(blob_size_) + " bytes"};
  }
  const auto start = RemoteBlobFetcher::Clock::now();
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  Status st = fetcher_->fetch(digest_, offset, out, start + fetcher_->timeout());
  if (!st.ok()) {
    stats_.failures.fetch_add(1, std::memory_order_relaxed);
    return std::move(st).error().context(what());
  }
  const auto us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(RemoteBlobFetcher::Clock::now() - start).count());
  stats_.bytes.fetch_add(out.size(), std::memory_order_relaxed);
  stats_.latency_us_total.fetch_add(us, std::memory_order_relaxed);
  size_t bucket = 0;
  while (bucket < RemoteFetchStats::kBucketsMs.size() && us > RemoteFetchStats::kBucketsMs[bucket] * 1000) ++bucket;
  stats_.latency[bucket].fetch_add(1, std::memory_order_relaxed);
  uint64_t max = stats_.latency_us_max.load(std::memory_order_relaxed);
  while (us > max && !stats_.latency_us_max.compare_exchange_weak(max, us, std::memory_order_relaxed)) {
  }
  return ok_status();
}

Status RegistryChunkReader::read_stored(uint64_t index, const erofs::ChunkInfo& chunk,
                                        std::span<std::byte> out) const {
  if (out.size() != chunk.stored_size) {
    return Error{EINVAL, name_ + ", chunk " + std::to_string(index) + ": buffer is not the chunk's stored size"};
  }
  return fetch(index, 1, chunk.blob_offset, out);
}

Status RegistryChunkReader::read_stored_run(uint64_t first_index, std::span<const erofs::ChunkInfo> chunks,
                                            std::span<std::byte> out) const {
  if (chunks.empty()) return out.empty() ? ok_status() : Error{EINVAL, name_ + ": an empty run with a buffer"};
  uint64_t end = chunks.front().blob_offset;
  for (const erofs::ChunkInfo& c : chunks) {
    if (c.blob_offset != end) {
      return Error{EINVAL, name_ + ", chunks " + std::to_string(first_index) + "..: not back to back in the blob"};
    }
    end += c.stored_size;
  }
  if (out.size() != end - chunks.front().blob_offset) {
    return Error{EINVAL, name_ + ", chunks " + std::to_string(first_index) + "..: buffer is not their stored size"};
  }
  return fetch(first_index, chunks.size(), chunks.front().blob_offset, out);
}

}  // namespace ferry::storage
