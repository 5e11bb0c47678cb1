// The background prefetch of one image served through blob caches (nydusd's `fs_prefetch`):
// the chunks of the image's prefetch list (ferry-image --prefetch-files) first, in list order,
// then every blob whole, filled into the caches by a storage::Prefetcher that yields to readers
// (the caches' DemandGate). What is present already costs nothing (fill skips it), so a
// successor's prefetch after a failover fetches only what its predecessor had not.
//
// Lifetime: the prefetch runs as long as the image is open. The image's first cached device is
// a PrefetchingDevice, which owns the Prefetcher through a PrefetchSlot filled once the image is
// open; closing the image (its last device dropped) stops the prefetch and joins its threads.
// Errors: none at start; failed pieces are counted in the Prefetcher's progress (and fetched on
// demand later). Thread-safety: as storage::Prefetcher.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/byte_source.h"
#include "erofs/chunk_table.h"
#include "storage/cached_blob_source.h"
#include "storage/prefetcher.h"

namespace ferry::imagefs {

struct PrefetchConfig;

// Where an open image's Prefetcher lives once it is started.
struct PrefetchSlot {
  std::shared_ptr<storage::Prefetcher> prefetcher;
};

// A device that also keeps its image's prefetch alive: reads go to `device` unchanged.
class PrefetchingDevice final : public ByteSource {
 public:
  PrefetchingDevice(std::shared_ptr<const ByteSource> device, std::shared_ptr<PrefetchSlot> slot)
      : device_(std::move(device)), slot_(std::move(slot)) {}
  [[nodiscard]] uint64_t size() const override { return device_->size(); }
  Status read_exact(uint64_t offset, std::span<std::byte> out) const override {
    return device_->read_exact(offset, out);
  }
  [[nodiscard]] std::span<const std::byte> view() const override { return device_->view(); }
  [[nodiscard]] const std::string& name() const override { return device_->name(); }

 private:
  std::shared_ptr<const ByteSource> device_;
  std::shared_ptr<PrefetchSlot> slot_;
};

// Starts the prefetch of `caches` (device d at index d - 1) for `table`'s image, named `image`
// in metrics. Listed by live_prefetchers() while it lives.
std::shared_ptr<storage::Prefetcher> start_image_prefetch(
    const erofs::ChunkTable& table, const std::vector<std::shared_ptr<const storage::CachedBlobSource>>& caches,
    const PrefetchConfig& config, std::shared_ptr<storage::DemandGate> gate);

// For metrics: every prefetch and every blob cache of the images open in this process.
std::vector<std::shared_ptr<storage::Prefetcher>> live_prefetchers();
std::vector<std::shared_ptr<const storage::CachedBlobSource>> live_blob_caches();
void register_blob_cache(const std::shared_ptr<const storage::CachedBlobSource>& cache);

}  // namespace ferry::imagefs
