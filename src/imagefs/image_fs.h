// ImageFs: read-only EROFS images served through the FUSE Filesystem interface.
//
// Either one image is the root (a dedicated daemon), or the root is an empty read-only
// directory whose children are images attached at run time (a shared daemon). Node ids,
// file handles and directory offsets are derived from the images (see node_id.h), so a
// successor process that attaches the same images in the same slots answers every id the
// kernel still holds; ImageFs keeps no per-lookup or per-open table.
//
// The image table a request reads: an immutable SlotTable (every resolvable image by slot,
// the pseudo root's children by name), published through one atomic pointer. A request
// (every Filesystem method, by its worker index) enters an EpochDomain, loads the pointer and
// binary-searches the slot: no lock, no reference count (EpochDomain: one store to the
// worker's own cache line and a fence). A READ, GETATTR or READLINK writes nothing shared;
// LOOKUP and READDIRPLUS add to the image's lookup count (one atomic add per entry: the
// kernel's references, which FORGET subtracts, decide when a detached image closes). attach(), detach(),
// replace() and the forget that drops a detached image's last reference build a new table
// under a mutex, publish it, and retire the old one to the domain, which destroys it (and
// with it the last reference to an image no table holds: its files and mappings close) once
// no request that could have read it is still running.
//
// Thread-safety: all Filesystem methods may run concurrently with each other and with
// attach()/detach(), one thread per worker index (RequestContext::worker, as FuseServer
// promises). Errors from a corrupt image reach the caller as EIO and are logged.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/epoch_domain.h"
#include "erofs/erofs_image.h"
#include "fuse/server/filesystem.h"
#include "imagefs/node_id.h"

namespace ferry::imagefs {

// An image attached to the filesystem and what it was attached from.
//
// `lookups` counts the references the kernel holds to this image's nodes (lookups and
// READDIRPLUS entries minus forgets). A detached image stays resolvable by node id while the
// count is positive, so files opened before a detach keep reading correctly.
struct AttachedImage {
  uint32_t slot = 0;
  std::string name;           // child name under the pseudo root; empty for the root image
  std::string source;         // bootstrap path
  std::string config;         // the backend config as given (opaque here)
  uint64_t mounted_time = 0;  // unix seconds
  std::shared_ptr<const erofs::ErofsImage> image;
  mutable std::atomic<int64_t> lookups{0};
  mutable std::atomic<bool> draining{false};  // detached; dropped once lookups reach 0

  AttachedImage() = default;
  AttachedImage(const AttachedImage& o)
      : slot(o.slot),
        name(o.name),
        source(o.source),
        config(o.config),
        mounted_time(o.mounted_time),
        image(o.image) {}
  // The counters start afresh: they describe one table's use of the image, not the value's.
  AttachedImage(AttachedImage&& o) noexcept
      : slot(o.slot),
        name(std::move(o.name)),
        source(std::move(o.source)),
        config(std::move(o.config)),
        mounted_time(o.mounted_time),
        image(std::move(o.image)) {}
  AttachedImage& operator=(const AttachedImage&) = delete;
  AttachedImage& operator=(AttachedImage&&) = delete;
  ~AttachedImage() = default;
};

// What a request sees of the attached images: built whole by a writer, never changed after
// it is published.
struct SlotTable {
  std::shared_ptr<const AttachedImage> root;                  // dedicated mode
  std::vector<std::shared_ptr<const AttachedImage>> slots;    // every resolvable image, by slot
  std::vector<const AttachedImage*> children;                 // pseudo root's children, by name
  uint64_t root_mtime_ns = 0;                                 // the pseudo root's mtime

  [[nodiscard]] const AttachedImage* find_slot(uint32_t slot) const;
  [[nodiscard]] const AttachedImage* find_child(std::string_view name) const;
};

struct ImageFsOptions {
  double entry_timeout = 86400;  // the image never changes: let the kernel cache for a day
  double attr_timeout = 86400;
  bool skip_open = true;  // answer OPEN/OPENDIR with ENOSYS when the kernel can do without
};

class ImageFs final : public fuse::Filesystem {
 public:
  // `workers`: how many worker indices requests use (FuseServer's, at most kMaxWorkers).
  explicit ImageFs(ImageFsOptions options = {}, unsigned workers = fuse::kMaxWorkers);

  // Makes `image` the root (dedicated mode). Fails if anything is attached already.
  Status set_root(AttachedImage image);
  // Attaches an image as a child of the pseudo root. EEXIST if the name or slot is taken,
  // EINVAL if the name is not a single path component or a root image is set.
  Status attach(AttachedImage image);
  // Detaches by name; ENOENT if absent. Returns the detached image, which keeps serving the
  // node ids the kernel still holds until they are forgotten.
  Result<std::shared_ptr<const AttachedImage>> detach(const std::string& name);
  // Puts `image` in place of the image attached under its name, atomically for lookups.
  Status replace(AttachedImage image);
  // Every attached image, root first then by name. With draining = true, also the detached
  // images still referenced by the kernel.
  [[nodiscard]] std::vector<std::shared_ptr<const AttachedImage>> images(bool draining = false) const;
  // Restores a detached-but-referenced image (after a takeover) so its node ids resolve.
  Status add_draining(AttachedImage image);
  // The next unused slot number (slots are never reused while the connection lives).
  [[nodiscard]] uint32_t next_slot() const;
  // Raises the next slot to at least `slot` (after restoring state).
  void reserve_slots_below(uint32_t slot);

  // fuse::Filesystem
  void init(const fuse::FuseInitParams& params) override;
  Result<fuse::Entry> lookup(const fuse::RequestContext& ctx, uint64_t parent,
                             std::string_view name) override;
  void forget(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t nlookup) override;
  Result<fuse::AttrReply> getattr(const fuse::RequestContext& ctx, uint64_t nodeid) override;
  Result<std::string> readlink(const fuse::RequestContext& ctx, uint64_t nodeid) override;
  Result<fuse::OpenReply> open(const fuse::RequestContext& ctx, uint64_t nodeid, uint32_t flags) override;
  Result<size_t> read(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                      std::span<std::byte> out) override;
  Result<fuse::OpenReply> opendir(const fuse::RequestContext& ctx, uint64_t nodeid, uint32_t flags) override;
  Status readdir(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                 fuse::DirSink& sink) override;
  Result<struct statvfs> statfs(const fuse::RequestContext& ctx, uint64_t nodeid) override;
  Result<std::string> getxattr(const fuse::RequestContext& ctx, uint64_t nodeid,
                               std::string_view name) override;
  Result<std::string> listxattr(const fuse::RequestContext& ctx, uint64_t nodeid) override;
  Status access(const fuse::RequestContext& ctx, uint64_t nodeid, uint32_t mask) override;
  Result<uint64_t> lseek(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                         uint32_t whence) override;

 private:
  // A node id resolved to its image and inode. `image` (null for the pseudo root) stays valid
  // while the request's epoch guard is held.
  struct Node {
    const AttachedImage* image = nullptr;
    erofs::Inode inode;
  };
  [[nodiscard]] const SlotTable& table() const { return *table_.load(std::memory_order_acquire); }
  Result<Node> resolve(const SlotTable& table, uint64_t nodeid) const;
  [[nodiscard]] uint64_t node_id_of(const AttachedImage& image, uint64_t nid) const;
  [[nodiscard]] uint64_t ino_of(const AttachedImage& image, uint64_t nid) const;
  void fill_stat(const AttachedImage& image, const erofs::Inode& inode, struct stat& st) const;
  [[nodiscard]] static struct stat pseudo_root_stat(const SlotTable& table);
  // An entry for the kernel; counts one lookup on the image when `counted`.
  Result<fuse::Entry> entry_for(const AttachedImage& image, uint64_t nid, bool counted = true) const;
  void uncount(const AttachedImage& image, uint64_t n);
  Status readdir_pseudo_root(const SlotTable& table, uint64_t offset, fuse::DirSink& sink) const;
  Error image_error(const AttachedImage& image, const Error& e) const;

  // Writers, under mu_: a copy of the current table to change, then publish() it.
  [[nodiscard]] SlotTable copy_locked() const { return *current_; }
  void publish_locked(SlotTable next);
  static void remove_slot(SlotTable& t, uint32_t slot);
  static void insert_slot(SlotTable& t, std::shared_ptr<const AttachedImage> image);
  static void rebuild_children(SlotTable& t, const std::vector<std::shared_ptr<const AttachedImage>>& named);

  ImageFsOptions options_;
  bool kernel_skips_open_ = false;
  bool kernel_skips_opendir_ = false;

  mutable EpochDomain epochs_;
  std::atomic<const SlotTable*> table_;  // what requests read; == current_.get()

  mutable std::mutex mu_;  // writers
  std::shared_ptr<const SlotTable> current_;
  std::vector<std::shared_ptr<const AttachedImage>> named_;  // the pseudo root's children, by name
  uint32_t next_slot_ = 1;
};

}  // namespace ferry::imagefs
