#include "imagefs/image_loader.h"

#include "storage/local_file.h"

namespace ferry::imagefs {

Result<std::shared_ptr<const erofs::ErofsImage>> open_image(const std::string& bootstrap,
                                                            const BackendConfig& backend) {
  if (backend.type != "localfs") {
    return Error{EINVAL, "unknown backend type '" + backend.type + "' (supported: localfs)"};
  }
  auto meta = storage::LocalFile::open(bootstrap, /*map=*/true);
  if (!meta.ok()) return std::move(meta).error().context("bootstrap");
  auto resolve = [&](const erofs::DeviceSlot& slot) -> Result<std::shared_ptr<const ByteSource>> {
    std::string path;
    if (!slot.tag.empty() && !backend.dir.empty()) {
      if (slot.tag.find('/') != std::string::npos || slot.tag == "." || slot.tag == "..") {
        return Error{EINVAL,
                     "device " + std::to_string(slot.device_id) + " has an unsafe tag '" + slot.tag + "'"};
      }
      path = backend.dir + "/" + slot.tag;
    } else if (!backend.blob_file.empty()) {
      path = backend.blob_file;
    } else {
      return Error{ENOENT, "image needs blob device " + std::to_string(slot.device_id) +
                               (slot.tag.empty() ? std::string(" (untagged)") : " (tag '" + slot.tag + "')") +
                               " but the config names no blob_file" + (slot.tag.empty() ? "" : " or dir")};
    }
    auto blob = storage::LocalFile::open(path, /*map=*/false);
    if (!blob.ok()) return std::move(blob).error().context("blob device " + std::to_string(slot.device_id));
    return std::shared_ptr<const ByteSource>(std::move(blob).value());
  };
  auto image = erofs::ErofsImage::open(std::move(meta).value(), resolve);
  if (!image.ok()) return std::move(image).error().context("image '" + bootstrap + "'");
  return image;
}

}  // namespace ferry::imagefs
