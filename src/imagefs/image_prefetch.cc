#include "imagefs/image_prefetch.h"

#include "common/live_list.h"
#include "imagefs/image_loader.h"

namespace ferry::imagefs {
namespace {

LiveList<storage::Prefetcher>& prefetchers() {
  static LiveList<storage::Prefetcher> list;
  return list;
}
LiveList<const storage::CachedBlobSource>& caches_list() {
  static LiveList<const storage::CachedBlobSource> list;
  return list;
}

// A blob cache as a prefetch target: chunk indexes within the blob.
class CacheFillTarget final : public storage::PrefetchTarget {
 public:
  CacheFillTarget(std::shared_ptr<const storage::CachedBlobSource> cache, std::span<const erofs::ChunkInfo> chunks)
      : cache_(std::move(cache)), chunks_(chunks) {}
  Status fill(uint64_t first, uint64_t count) const override { return cache_->fill(first, count); }
  [[nodiscard]] uint64_t stored_size(uint64_t index) const override { return chunks_[index].stored_size; }
  [[nodiscard]] uint64_t chunk_count() const override { return chunks_.size(); }

 private:
  std::shared_ptr<const storage::CachedBlobSource> cache_;
  std::span<const erofs::ChunkInfo> chunks_;  // the table outlives the cache (the cache holds it)
};

}  // namespace

std::shared_ptr<storage::Prefetcher> start_image_prefetch(
    const erofs::ChunkTable& table, const std::vector<std::shared_ptr<const storage::CachedBlobSource>>& caches,
    const PrefetchConfig& config, std::shared_ptr<storage::DemandGate> gate) {
  std::vector<std::shared_ptr<const storage::PrefetchTarget>> targets;
  for (size_t i = 0; i < caches.size() && i < table.blobs.size(); ++i) {
    targets.push_back(std::make_shared<CacheFillTarget>(caches[i], table.chunks_of(table.blobs[i].device_id)));
  }
  std::vector<storage::PrefetchJob> jobs;
  // The prefetch list first (global chunk indexes; parse_chunk_table checked each lies in one blob).
  for (const erofs::PrefetchRange& r : table.prefetch) {
    for (size_t b = 0; b < targets.size(); ++b) {
      const erofs::BlobInfo& blob = table.blobs[b];
      if (r.first_chunk >= blob.first_chunk && r.first_chunk - blob.first_chunk < blob.chunk_count) {
        jobs.push_back({targets[b], r.first_chunk - blob.first_chunk, r.chunk_count});
        break;
      }
    }
  }
  // Then every blob whole: what the list already fetched is present and skipped.
  for (const auto& t : targets) jobs.push_back({t, 0, t->chunk_count()});
  storage::PrefetchOptions options;
  options.threads = config.threads_count == 0 ? 1 : config.threads_count;
  options.bandwidth_rate = config.bandwidth_rate;
  auto prefetcher = std::make_shared<storage::Prefetcher>(std::move(jobs), options, std::move(gate));
  prefetchers().add(prefetcher);
  return prefetcher;
}

std::vector<std::shared_ptr<storage::Prefetcher>> live_prefetchers() { return prefetchers().snapshot(); }
std::vector<std::shared_ptr<const storage::CachedBlobSource>> live_blob_caches() { return caches_list().snapshot(); }
void register_blob_cache(const std::shared_ptr<const storage::CachedBlobSource>& cache) { caches_list().add(cache); }

}  // namespace ferry::imagefs
