// DeferredImage: an ErofsImage that is opened on first use.
//
// A successor taking over a shared daemon would otherwise open every image (files, mappings,
// superblock and device checks: ~50 us apiece on this machine kind) inside the failover's
// blackout. Deferred, each image is opened by the first request that needs it, or ahead of time
// by prepare() (a hot standby prepares all of them before it stands by).
//
// Errors: when opening fails, every call returns that error and superblock()/devices() return
// empty values; the opener runs once, whatever its outcome. One image that cannot be opened
// fails the requests for that image only, never the takeover of the others.
//
// Thread-safety: every method may be called concurrently; after the open, a call costs one
// atomic load more than the image's own.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "erofs/erofs_image.h"

namespace ferry::imagefs {

class DeferredImage final : public erofs::ErofsImage {
 public:
  using Opener = std::function<Result<std::shared_ptr<const erofs::ErofsImage>>()>;

  explicit DeferredImage(Opener open) : open_(std::move(open)) {}

  // Opens the image now if that has not happened yet; the open's error, if any.
  [[nodiscard]] Status prepare() const;
  // True once an open was attempted (successfully or not).
  [[nodiscard]] bool attempted() const { return attempted_.load(std::memory_order_acquire); }

  [[nodiscard]] const erofs::SuperblockInfo& superblock() const override;
  [[nodiscard]] const std::vector<erofs::DeviceSlot>& devices() const override;
  [[nodiscard]] Result<erofs::Inode> inode(uint64_t nid) const override;
  [[nodiscard]] Result<uint64_t> lookup(const erofs::Inode& dir, std::string_view name) const override;
  Status read_dir(const erofs::Inode& dir, uint64_t cookie,
                  const std::function<bool(const erofs::DirEntry&)>& visit) const override;
  [[nodiscard]] Result<size_t> read(const erofs::Inode& file, uint64_t offset,
                                    std::span<std::byte> out) const override;
  [[nodiscard]] Result<std::string> read_link(const erofs::Inode& link) const override;
  [[nodiscard]] Result<std::vector<std::string>> list_xattrs(const erofs::Inode& inode) const override;
  [[nodiscard]] Result<std::string> get_xattr(const erofs::Inode& inode,
                                              std::string_view name) const override;
  [[nodiscard]] Result<uint64_t> seek(const erofs::Inode& file, uint64_t offset, int whence) const override;

 private:
  // The opened image, or nullptr (then failure() says why).
  const erofs::ErofsImage* get() const;
  [[nodiscard]] Error failure() const;

  Opener open_;
  mutable std::once_flag once_;
  mutable std::atomic<const erofs::ErofsImage*> ready_{nullptr};
  mutable std::atomic<bool> attempted_{false};
  mutable std::shared_ptr<const erofs::ErofsImage> image_;  // written once, under once_
  mutable std::optional<Error> error_;                      // written once, under once_
};

}  // namespace ferry::imagefs
