#include "imagefs/image_loader.h"

#include "erofs/chunk_table.h"
#include "remote/registry_fetcher.h"
#include "storage/chunked_blob_source.h"
#include "storage/local_file.h"
#include "storage/registry_chunk_reader.h"

namespace ferry::imagefs {
namespace {

// The device of blob `device_id` of a registry-backed image: its chunks fetched on demand.
Result<std::shared_ptr<const ByteSource>> open_registry_device(
    const std::shared_ptr<const erofs::ChunkTable>& table, uint16_t device_id,
    const std::shared_ptr<const storage::RemoteBlobFetcher>& fetcher, const BackendConfig& backend) {
  if (device_id == 0 || device_id > table->blobs.size()) {
    return Error{EINVAL, "the chunk table describes no blob " + std::to_string(device_id)};
  }
  const erofs::BlobInfo& blob = table->blobs[device_id - 1];
  auto stored = storage::RegistryChunkReader::open(fetcher, "sha256:" + erofs::digest_hex(blob.digest), blob.blob_size);
  // ---- INTEGRATION POINT: the persistent blob cache (issue 16 point 3) ----------------------
  // With `backend.cache.type == "blobcache"`, the device is a storage::CachedBlobSource over
  // `stored` in `backend.cache.work_dir` instead of the ChunkedBlobSource below. This is the
  // one place where a registry blob's device is made.
  (void)backend;
  // ---------------------------------------------------------------------------------------
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

  auto resolve = [&](const erofs::DeviceSlot& slot) -> Result<std::shared_ptr<const ByteSource>> {
    if (fetcher != nullptr) {
      auto device = open_registry_device(table, slot.device_id, fetcher, backend);
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
  return image;
}

}  // namespace ferry::imagefs
