#include "imagefs/deferred_image.h"

namespace ferry::imagefs {

const erofs::ErofsImage* DeferredImage::get() const {
  if (const auto* image = ready_.load(std::memory_order_acquire)) return image;
  std::call_once(once_, [this] {
    auto opened = open_();
    if (opened.ok() && *opened != nullptr) {
      image_ = std::move(opened).value();
      ready_.store(image_.get(), std::memory_order_release);
    } else {
      error_ = opened.ok() ? Error{EIO, "the image opener returned no image"} : std::move(opened).error();
    }
    attempted_.store(true, std::memory_order_release);
  });
  return ready_.load(std::memory_order_acquire);
}

Error DeferredImage::failure() const {
  // Only reached after call_once completed without an image: error_ is set and never changes.
  return error_ ? *error_ : Error{EIO, "the image could not be opened"};
}

Status DeferredImage::prepare() const {
  if (get() == nullptr) return failure();
  return {};
}

const erofs::SuperblockInfo& DeferredImage::superblock() const {
  static const erofs::SuperblockInfo none{};
  const auto* image = get();
  return image != nullptr ? image->superblock() : none;
}

const std::vector<erofs::DeviceSlot>& DeferredImage::devices() const {
  static const std::vector<erofs::DeviceSlot> none;
  const auto* image = get();
  return image != nullptr ? image->devices() : none;
}

Result<erofs::Inode> DeferredImage::inode(uint64_t nid) const {
  const auto* image = get();
  if (image == nullptr) return failure();
  return image->inode(nid);
}

Result<uint64_t> DeferredImage::lookup(const erofs::Inode& dir, std::string_view name) const {
  const auto* image = get();
  if (image == nullptr) return failure();
  return image->lookup(dir, name);
}

Status DeferredImage::read_dir(const erofs::Inode& dir, uint64_t cookie,
                               const std::function<bool(const erofs::DirEntry&)>& visit) const {
  const auto* image = get();
  if (image == nullptr) return failure();
  return image->read_dir(dir, cookie, visit);
}

Result<size_t> DeferredImage::read(const erofs::Inode& file, uint64_t offset,
                                   std::span<std::byte> out) const {
  const auto* image = get();
  if (image == nullptr) return failure();
  return image->read(file, offset, out);
}

Result<std::string> DeferredImage::read_link(const erofs::Inode& link) const {
  const auto* image = get();
  if (image == nullptr) return failure();
  return image->read_link(link);
}

Result<std::vector<std::string>> DeferredImage::list_xattrs(const erofs::Inode& inode) const {
  const auto* image = get();
  if (image == nullptr) return failure();
  return image->list_xattrs(inode);
}

Result<std::string> DeferredImage::get_xattr(const erofs::Inode& inode, std::string_view name) const {
  const auto* image = get();
  if (image == nullptr) return failure();
  return image->get_xattr(inode, name);
}

Result<uint64_t> DeferredImage::seek(const erofs::Inode& file, uint64_t offset, int whence) const {
  const auto* image = get();
  if (image == nullptr) return failure();
  return image->seek(file, offset, whence);
}

}  // namespace ferry::imagefs
