#include "imagefs/image_loader.h"

#include "erofs/chunk_table.h"
#include "storage/chunked_blob_source.h"
#include "storage/local_file.h"

namespace ferry::imagefs {

Result<std::shared_ptr<const erofs::ErofsImage>> open_image(const std::string& bootstrap,
                                                            const BackendConfig& backend) {
  if (backend.type != "localfs") {
    return Error{EINVAL, "unknown backend type '" + backend.type + "' (supported: localfs)"};
  }
  auto meta = storage::LocalFile::open(bootstrap, /*map=*/true);
  if (!meta.ok()) return std::move(meta).error().context("bootstrap");
  // A Ferry image (docs/image-format.md) carries a chunk table: its blobs are read through it.
  // Without the Ferry header the devices are read raw, as mkfs.erofs images always were.
  auto loaded = erofs::load_chunk_table(**meta);
  if (!loaded.ok()) return std::move(loaded).error().context("image '" + bootstrap + "'");
  std::shared_ptr<const erofs::ChunkTable> table;
  if (loaded->has_value()) table = std::make_shared<const erofs::ChunkTable>(std::move(**loaded));

  auto resolve = [&](const erofs::DeviceSlot& slot) -> Result<std::shared_ptr<const ByteSource>> {
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
