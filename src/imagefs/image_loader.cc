#include "imagefs/image_loader.h"

#include "erofs/chunk_table.h"
#include "imagefs/image_prefetch.h"
#include "remote/registry_fetcher.h"
#include "storage/chunked_blob_source.h"
#include "storage/local_file.h"
#include "storage/registry_chunk_reader.h"

namespace ferry::imagefs {
namespace {

// The blob caches of one image being opened, and its prefetch (image_prefetch.h).
struct CacheSet {
  std::shared_ptr<storage::DemandGate> gate = std::make_shared<storage::DemandGate>();
  std::vector<std::shared_ptr<const storage::CachedBlobSource>> caches;  // device d at d - 1
  std::shared_ptr<PrefetchSlot> prefetch;  // set when fs_prefetch is enabled
};

// The device of blob `device_id` of a registry-backed image: its chunks fetched on demand,
// through the persistent blob cache when one is configured.
Result<std::shared_ptr<const ByteSource>> open_registry_device(
    const std::shared_ptr<const erofs::ChunkTable>& table, uint16_t device_id,
    const std::shared_ptr<const storage::RemoteBlobFetcher>& fetcher, const BackendConfig& backend,
    CacheSet& set) {
  if (device_id == 0 || device_id > table->blobs.size()) {
    return Error{EINVAL, "the chunk table describes no blob " + std::to_string(device_id)};
  }
  const erofs::BlobInfo& blob = table->blobs[device_id - 1];
  auto stored = storage::RegistryChunkReader::open(fetcher, "sha256:" + erofs::digest_hex(blob.digest), blob.blob_size);
  if (backend.cache.type == "blobcache") {
    storage::BlobCacheOptions options;
    options.work_dir = backend.cache.work_dir;
    options.gate = set.gate;
    FERRY_ASSIGN(std::shared_ptr<const storage::CachedBlobSource> cache,
                 storage::CachedBlobSource::open(table, device_id, std::move(stored), options));
    register_blob_cache(cache);
    set.caches.push_back(cache);
    // The first device keeps the image's prefetch alive (started once every device is open).
    if (set.prefetch != nullptr && set.caches.size() == 1) {
      return std::shared_ptr<const ByteSource>(std::make_shared<PrefetchingDevice>(cache, set.prefetch));
    }
    return std::shared_ptr<const ByteSource>(cache);
  }
  auto device = storage::ChunkedBlobSource::open(table, device_id, std::move(stored));
  if (!device.ok()) return std::move(device).error();
  return std::shared_ptr<const ByteSource>(std::move(device).value());
}

}  // namespace

Result<std::shared_ptr<const erofs::ErofsImage>> open_image(const std::string& bootstrap,
                                                            const BackendConfig& backend) {
  if (backend.type != "localfs" && backend.type != "registry") {
    return Error{EINVAL, "unknown backend type '" + backend.type + "' (supported: localfs, registry)"};
  }
  auto meta = storage::LocalFile::open(bootstrap, /*map=*/true);
  if (!meta.ok()) return std::move(meta).error().context("bootstrap");
  // A Ferry image (docs/image-format.md) carries a chunk table: its blobs are read through it.
  // Without the Ferry header the devices are read raw, as mkfs.erofs images always were.
  auto loaded = erofs::load_chunk_table(**meta);
  if (!loaded.ok()) return std::move(loaded).error().context("image '" + bootstrap + "'");
  std::shared_ptr<const erofs::ChunkTable> table;
  if (loaded->has_value()) table = std::make_shared<const erofs::ChunkTable>(std::move(**loaded));
  std::shared_ptr<const storage::RemoteBlobFetcher> fetcher;
  if (backend.type == "registry") {
    if (table == nullptr) {
      return Error{EINVAL, "image '" + bootstrap +
                               "' has no Ferry chunk table: only Ferry images (ferry-image create/convert) "
                               "can be served from a registry"};
    }
    // Loads nothing yet: the module is dlopen()ed by the first fetch.
    FERRY_ASSIGN(fetcher, remote::RegistryFetcher::create(backend.registry));
  }
  CacheSet caches;
  if (backend.prefetch.enable && backend.cache.type == "blobcache") caches.prefetch = std::make_shared<PrefetchSlot>();

  auto resolve = [&](const erofs::DeviceSlot& slot) -> Result<std::shared_ptr<const ByteSource>> {
    if (fetcher != nullptr) {
      auto device = open_registry_device(table, slot.device_id, fetcher, backend, caches);
      if (!device.ok()) return std::move(device).error().context("blob device " + std::to_string(slot.device_id));
      return device;
    }
    std::string path;
    if (!slot.tag.empty() && !backend.dir.empty()) {
      if (slot.tag.find('/') != std::string::npos || slot.tag == "." || slot.tag == "..") {
        return Error{EINVAL,
                     "device " + std::to_string(slot.device_id) + " has an unsafe tag '" + slot.tag + "'"};
      }
      path = backend.dir + "/" + slot.tag;
    } else if (!backend.blob_file.empty()) {
      if (table != nullptr && table->blobs.size() > 1) {
        return Error{EINVAL, "the image has " + std::to_string(table->blobs.size()) +
                                 " blobs: one blob_file cannot serve them (configure \"dir\")"};
      }
      path = backend.blob_file;
    } else {
      return Error{ENOENT, "image needs blob device " + std::to_string(slot.device_id) +
                               (slot.tag.empty() ? std::string(" (untagged)") : " (tag '" + slot.tag + "')") +
                               " but the config names no blob_file" + (slot.tag.empty() ? "" : " or dir")};
    }
    auto blob = storage::LocalFile::open(path, /*map=*/false);
    if (!blob.ok()) return std::move(blob).error().context("blob device " + std::to_string(slot.device_id));
    if (table == nullptr) return std::shared_ptr<const ByteSource>(std::move(blob).value());
    auto device = storage::open_blob_device(table, slot.device_id, std::move(blob).value());
    if (!device.ok())
      return std::move(device).error().context("blob device " + std::to_string(slot.device_id));
    return device;
  };
  auto image = erofs::ErofsImage::open(std::move(meta).value(), resolve);
  if (!image.ok()) return std::move(image).error().context("image '" + bootstrap + "'");
  if (table != nullptr) {
    Status st = erofs::check_chunk_table_devices(*table, (*image)->devices());
    if (!st.ok()) return std::move(st).error().context("image '" + bootstrap + "'");
  }
  if (caches.prefetch != nullptr && table != nullptr && caches.caches.size() == table->blobs.size()) {
    caches.prefetch->prefetcher = start_image_prefetch(*table, caches.caches, backend.prefetch, caches.gate);
  }
  return image;
}

}  // namespace ferry::imagefs
