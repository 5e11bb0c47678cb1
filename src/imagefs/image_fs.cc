#include "imagefs/image_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <mutex>

#include "fuse/abi/init_params.h"

namespace ferry::imagefs {
namespace {

constexpr double kPseudoRootTimeout = 1.0;  // children come and go with attach/detach

uint32_t dtype_of(erofs::FileType t) {
  switch (t) {
    case erofs::FileType::kRegular:
      return DT_REG;
    case erofs::FileType::kDirectory:
      return DT_DIR;
    case erofs::FileType::kCharDevice:
      return DT_CHR;
    case erofs::FileType::kBlockDevice:
      return DT_BLK;
    case erofs::FileType::kFifo:
      return DT_FIFO;
    case erofs::FileType::kSocket:
      return DT_SOCK;
    case erofs::FileType::kSymlink:
      return DT_LNK;
    case erofs::FileType::kUnknown:
      break;
  }
  return DT_UNKNOWN;
}

bool is_dot_or_dotdot(std::string_view name) {
  return name == "." || name == "..";
}

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

// ---- the slot table ------------------------------------------------------------------------

const AttachedImage* SlotTable::find_slot(uint32_t slot) const {
  if (slots.size() == 1) return slots.front()->slot == slot ? slots.front().get() : nullptr;
  auto it = std::lower_bound(slots.begin(), slots.end(), slot,
                             [](const auto& image, uint32_t s) { return image->slot < s; });
  return it != slots.end() && (*it)->slot == slot ? it->get() : nullptr;
}

const AttachedImage* SlotTable::find_child(std::string_view name) const {
  auto it = std::lower_bound(children.begin(), children.end(), name,
                             [](const AttachedImage* image, std::string_view n) { return image->name < n; });
  return it != children.end() && (*it)->name == name ? *it : nullptr;
}

ImageFs::ImageFs(ImageFsOptions options, unsigned workers)
    : options_(options), epochs_(workers) {
  SlotTable first;
  first.root_mtime_ns = now_ns();
  current_ = std::make_shared<const SlotTable>(std::move(first));
  table_.store(current_.get(), std::memory_order_release);
}

void ImageFs::publish_locked(SlotTable next) {
  std::shared_ptr<const SlotTable> old = std::move(current_);
  current_ = std::make_shared<const SlotTable>(std::move(next));
  table_.store(current_.get(), std::memory_order_seq_cst);
  // Requests that loaded the old table may still use it (and the images only it holds).
  epochs_.retire(std::move(old));
}

void ImageFs::remove_slot(SlotTable& t, uint32_t slot) {
  std::erase_if(t.slots, [slot](const auto& image) { return image->slot == slot; });
}

void ImageFs::insert_slot(SlotTable& t, std::shared_ptr<const AttachedImage> image) {
  auto it = std::lower_bound(t.slots.begin(), t.slots.end(), image->slot,
                             [](const auto& i, uint32_t s) { return i->slot < s; });
  t.slots.insert(it, std::move(image));
}

void ImageFs::rebuild_children(SlotTable& t, const std::vector<std::shared_ptr<const AttachedImage>>& named) {
  t.children.clear();
  for (const auto& image : named) t.children.push_back(image.get());
  t.root_mtime_ns = now_ns();
}

Status ImageFs::set_root(AttachedImage image) {
  std::lock_guard lock(mu_);
  if (current_->root || !current_->slots.empty()) return Error{EEXIST, "a root image is already set"};
  if (image.slot == 0 || image.slot > kMaxSlot) return Error{EINVAL, "invalid image slot"};
  auto shared = std::make_shared<const AttachedImage>(std::move(image));
  SlotTable next = copy_locked();
  next.root = shared;
  insert_slot(next, shared);
  next_slot_ = std::max(next_slot_, shared->slot + 1);
  publish_locked(std::move(next));
  return {};
}

namespace {
auto by_name_position(std::vector<std::shared_ptr<const AttachedImage>>& named, std::string_view name) {
  return std::lower_bound(named.begin(), named.end(), name,
                          [](const auto& image, std::string_view n) { return image->name < n; });
}
}  // namespace

Status ImageFs::attach(AttachedImage image) {
  if (image.name.empty() || image.name.find('/') != std::string::npos || is_dot_or_dotdot(image.name) ||
      image.name.size() > 255) {
    return Error{EINVAL, "image name '" + image.name + "' must be a single path component"};
  }
  std::lock_guard lock(mu_);
  if (current_->root) return Error{EINVAL, "this daemon serves a single image at its root"};
  if (image.slot == 0 || image.slot > kMaxSlot) return Error{EINVAL, "invalid image slot"};
  auto pos = by_name_position(named_, image.name);
  if (pos != named_.end() && (*pos)->name == image.name)
    return Error{EEXIST, "'/" + image.name + "' is already mounted"};
  if (current_->find_slot(image.slot) != nullptr)
    return Error{EEXIST, "image slot " + std::to_string(image.slot) + " is taken"};
  auto shared = std::make_shared<const AttachedImage>(std::move(image));
  named_.insert(pos, shared);
  SlotTable next = copy_locked();
  insert_slot(next, shared);
  rebuild_children(next, named_);
  next_slot_ = std::max(next_slot_, shared->slot + 1);
  publish_locked(std::move(next));
  return {};
}

Result<std::shared_ptr<const AttachedImage>> ImageFs::detach(const std::string& name) {
  std::lock_guard lock(mu_);
  auto pos = by_name_position(named_, name);
  if (pos == named_.end() || (*pos)->name != name) return Error{ENOENT, "'/" + name + "' is not mounted"};
  std::shared_ptr<const AttachedImage> image = *pos;
  named_.erase(pos);
  image->draining.store(true);
  SlotTable next = copy_locked();
  if (image->lookups.load() <= 0) remove_slot(next, image->slot);
  rebuild_children(next, named_);
  publish_locked(std::move(next));
  return image;
}

Status ImageFs::replace(AttachedImage image) {
  std::lock_guard lock(mu_);
  auto pos = by_name_position(named_, image.name);
  if (pos == named_.end() || (*pos)->name != image.name)
    return Error{ENOENT, "'/" + image.name + "' is not mounted"};
  if (image.slot == 0 || image.slot > kMaxSlot || current_->find_slot(image.slot) != nullptr) {
    return Error{EINVAL, "invalid or taken image slot"};
  }
  std::shared_ptr<const AttachedImage> old = *pos;
  old->draining.store(true);
  auto shared = std::make_shared<const AttachedImage>(std::move(image));
  *pos = shared;
  SlotTable next = copy_locked();
  if (old->lookups.load() <= 0) remove_slot(next, old->slot);
  insert_slot(next, shared);
  rebuild_children(next, named_);
  next_slot_ = std::max(next_slot_, shared->slot + 1);
  publish_locked(std::move(next));
  return {};
}

Status ImageFs::add_draining(AttachedImage image) {
  std::lock_guard lock(mu_);
  if (image.slot == 0 || image.slot > kMaxSlot || current_->find_slot(image.slot) != nullptr) {
    return Error{EINVAL, "invalid or taken image slot"};
  }
  auto shared = std::make_shared<const AttachedImage>(std::move(image));
  shared->draining.store(true);
  // Its kernel references predate this process: never count it down to zero.
  shared->lookups.store(INT64_MAX / 2);
  SlotTable next = copy_locked();
  insert_slot(next, shared);
  next_slot_ = std::max(next_slot_, shared->slot + 1);
  publish_locked(std::move(next));
  return {};
}

std::vector<std::shared_ptr<const AttachedImage>> ImageFs::images(bool draining) const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const AttachedImage>> out;
  if (current_->root) out.push_back(current_->root);
  out.insert(out.end(), named_.begin(), named_.end());
  if (draining) {
    for (const auto& image : current_->slots) {
      if (image->draining.load()) out.push_back(image);
    }
  }
  return out;
}

void ImageFs::uncount(const AttachedImage& image, uint64_t n) {
  int64_t left = image.lookups.fetch_sub(static_cast<int64_t>(n)) - static_cast<int64_t>(n);
  if (left > 0 || !image.draining.load()) return;
  std::lock_guard lock(mu_);
  if (current_->find_slot(image.slot) != &image || image.lookups.load() > 0) return;
  spdlog::info("detached image '{}' (slot {}) is no longer referenced: closed", image.source, image.slot);
  SlotTable next = copy_locked();
  remove_slot(next, image.slot);
  publish_locked(std::move(next));
}

void ImageFs::forget(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t nlookup) {
  if (nodeid == kRootNodeId) return;
  auto ref = decode_node(nodeid);
  if (!ref) return;
  EpochDomain::Guard guard(epochs_, ctx.worker);
  if (const AttachedImage* image = table().find_slot(ref->slot)) uncount(*image, nlookup);
}

uint32_t ImageFs::next_slot() const {
  std::lock_guard lock(mu_);
  return next_slot_;
}

void ImageFs::reserve_slots_below(uint32_t slot) {
  std::lock_guard lock(mu_);
  next_slot_ = std::max(next_slot_, slot);
}

// ---- node ids ------------------------------------------------------------------------------

uint64_t ImageFs::node_id_of(const AttachedImage& image, uint64_t nid) const {
  if (image.name.empty() && nid == image.image->superblock().root_nid) return kRootNodeId;
  return encode_node({image.slot, nid}).value_or(0);
}

uint64_t ImageFs::ino_of(const AttachedImage& image, uint64_t nid) const {
  // A dedicated daemon reports the kernel erofs driver's inode numbers (the nid); a shared one
  // must keep them unique across images.
  if (image.name.empty()) return nid;
  return encode_node({image.slot, nid}).value_or(0);
}

Error ImageFs::image_error(const AttachedImage& image, const Error& e) const {
  if (e.code == EIO || e.code == EOPNOTSUPP) {
    spdlog::warn("image '{}': {}", image.source, e.message);
    return Error{EIO, e.message};
  }
  return e;
}

Result<ImageFs::Node> ImageFs::resolve(const SlotTable& t, uint64_t nodeid) const {
  const AttachedImage* image = nullptr;
  uint64_t nid = 0;
  if (nodeid == kRootNodeId) {
    image = t.root.get();
    if (image == nullptr) return Node{};  // the pseudo root
    nid = image->image->superblock().root_nid;
  } else {
    auto ref = decode_node(nodeid);
    if (!ref) return Error{ESTALE, "unknown node id"};
    image = t.find_slot(ref->slot);
    if (image == nullptr) return Error{ESTALE, "image detached"};
    nid = ref->nid;
  }
  auto inode = image->image->inode(nid);
  if (!inode.ok()) return image_error(*image, inode.error());
  return Node{image, *inode};
}

void ImageFs::fill_stat(const AttachedImage& image, const erofs::Inode& inode, struct stat& st) const {
  st = {};
  st.st_ino = ino_of(image, inode.nid);
  st.st_mode = inode.mode;
  st.st_nlink = inode.nlink;
  st.st_uid = inode.uid;
  st.st_gid = inode.gid;
  st.st_rdev = inode.rdev;
  st.st_size = static_cast<off_t>(inode.size);
  st.st_blksize = static_cast<blksize_t>(image.image->superblock().block_size);
  st.st_blocks = static_cast<blkcnt_t>((inode.size + 511) / 512);
  st.st_mtim.tv_sec = static_cast<time_t>(inode.mtime);
  st.st_mtim.tv_nsec = inode.mtime_nsec;
  st.st_atim = st.st_mtim;
  st.st_ctim = st.st_mtim;
}

struct stat ImageFs::pseudo_root_stat(const SlotTable& t) {
  struct stat st {};
  st.st_ino = kRootNodeId;
  st.st_mode = S_IFDIR | 0755;
  st.st_nlink = 2 + t.children.size();
  st.st_blksize = 4096;
  st.st_mtim.tv_sec = static_cast<time_t>(t.root_mtime_ns / 1000000000U);
  st.st_mtim.tv_nsec = static_cast<long>(t.root_mtime_ns % 1000000000U);
  st.st_atim = st.st_mtim;
  st.st_ctim = st.st_mtim;
  return st;
}

Result<fuse::Entry> ImageFs::entry_for(const AttachedImage& image, uint64_t nid, bool counted) const {
  auto inode = image.image->inode(nid);
  if (!inode.ok()) return image_error(image, inode.error());
  fuse::Entry e;
  e.nodeid = node_id_of(image, nid);
  if (e.nodeid == 0) return Error{EIO, "inode " + std::to_string(nid) + " cannot be named"};
  if (counted && e.nodeid != kRootNodeId) image.lookups.fetch_add(1, std::memory_order_relaxed);
  fill_stat(image, *inode, e.attr);
  bool pseudo_child = !image.name.empty() && nid == image.image->superblock().root_nid;
  e.entry_timeout = pseudo_child ? kPseudoRootTimeout : options_.entry_timeout;
  e.attr_timeout = options_.attr_timeout;
  return e;
}

// ---- fuse::Filesystem ----------------------------------------------------------------------

void ImageFs::init(const fuse::FuseInitParams& params) {
  kernel_skips_open_ = (params.kernel_flags & FUSE_NO_OPEN_SUPPORT) != 0;
  kernel_skips_opendir_ = (params.kernel_flags & FUSE_NO_OPENDIR_SUPPORT) != 0;
}

Result<fuse::Entry> ImageFs::lookup(const fuse::RequestContext& ctx, uint64_t parent, std::string_view name) {
  EpochDomain::Guard guard(epochs_, ctx.worker);
  const SlotTable& t = table();
  FERRY_ASSIGN(Node dir, resolve(t, parent));
  if (!dir.image) {
    const AttachedImage* child = t.find_child(name);
    if (child == nullptr) return Error{ENOENT, "no such image"};
    return entry_for(*child, child->image->superblock().root_nid);
  }
  auto nid = dir.image->image->lookup(dir.inode, name);
  if (!nid.ok()) {
    if (nid.error().code == ENOENT) {
      fuse::Entry negative;  // cached by the kernel: the image never gains this name
      negative.entry_timeout = options_.entry_timeout;
      return negative;
    }
    return image_error(*dir.image, nid.error());
  }
  return entry_for(*dir.image, *nid);
}

Result<fuse::AttrReply> ImageFs::getattr(const fuse::RequestContext& ctx, uint64_t nodeid) {
  EpochDomain::Guard guard(epochs_, ctx.worker);
  const SlotTable& t = table();
  FERRY_ASSIGN(Node node, resolve(t, nodeid));
  fuse::AttrReply reply;
  if (!node.image) {
    reply.attr = pseudo_root_stat(t);
    reply.attr_timeout = kPseudoRootTimeout;
    return reply;
  }
  fill_stat(*node.image, node.inode, reply.attr);
  reply.attr_timeout = options_.attr_timeout;
  return reply;
}

Result<std::string> ImageFs::readlink(const fuse::RequestContext& ctx, uint64_t nodeid) {
  EpochDomain::Guard guard(epochs_, ctx.worker);
  FERRY_ASSIGN(Node node, resolve(table(), nodeid));
  if (!node.image) return Error{EINVAL, "not a symlink"};
  auto target = node.image->image->read_link(node.inode);
  if (!target.ok()) return image_error(*node.image, target.error());
  return target;
}

Result<fuse::OpenReply> ImageFs::open(const fuse::RequestContext& /*ctx*/, uint64_t /*nodeid*/,
                                      uint32_t flags) {
  if ((flags & O_ACCMODE) != O_RDONLY) return Error{EROFS, "read-only image"};
  // Without OPEN the kernel keeps the page cache across opens and never sends RELEASE: two
  // round trips saved per file, and nothing to remember per open file.
  if (options_.skip_open && kernel_skips_open_) return Error{ENOSYS, "open not needed"};
  fuse::OpenReply reply;
  reply.keep_cache = true;
  return reply;
}

Result<fuse::OpenReply> ImageFs::opendir(const fuse::RequestContext& /*ctx*/, uint64_t /*nodeid*/,
                                         uint32_t /*flags*/) {
  if (options_.skip_open && kernel_skips_opendir_) return Error{ENOSYS, "opendir not needed"};
  fuse::OpenReply reply;
  reply.keep_cache = true;
  reply.cache_dir = true;
  return reply;
}

Result<size_t> ImageFs::read(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t /*fh*/,
                             uint64_t offset, std::span<std::byte> out) {
  EpochDomain::Guard guard(epochs_, ctx.worker);
  FERRY_ASSIGN(Node node, resolve(table(), nodeid));
  if (!node.image) return Error{EISDIR, "is a directory"};
  auto n = node.image->image->read(node.inode, offset, out);
  if (!n.ok()) return image_error(*node.image, n.error());
  return n;
}

Status ImageFs::readdir_pseudo_root(const SlotTable& t, uint64_t offset, fuse::DirSink& sink) const {
  const auto& children = t.children;
  struct stat root = pseudo_root_stat(t);
  uint64_t index = offset;
  auto emit_dot = [&](std::string_view name) {
    if (sink.plus()) {
      fuse::Entry e;
      e.attr = root;
      return sink.add_plus(name, e, index + 1);
    }
    return sink.add(name, kRootNodeId, DT_DIR, index + 1);
  };
  for (; index < 2; ++index) {
    if (!emit_dot(index == 0 ? "." : "..")) return {};
  }
  for (; index - 2 < children.size(); ++index) {
    const auto& child = children[index - 2];
    uint64_t root_nid = child->image->superblock().root_nid;
    if (sink.plus()) {
      auto e = entry_for(*child, root_nid, /*counted=*/false);
      if (!e.ok()) return e.error();
      if (!sink.add_plus(child->name, *e, index + 1)) return {};
      child->lookups.fetch_add(1, std::memory_order_relaxed);
    } else if (!sink.add(child->name, ino_of(*child, root_nid), DT_DIR, index + 1)) {
      return {};
    }
  }
  return {};
}

Status ImageFs::readdir(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t /*fh*/,
                        uint64_t offset, fuse::DirSink& sink) {
  EpochDomain::Guard guard(epochs_, ctx.worker);
  const SlotTable& t = table();
  FERRY_ASSIGN(Node dir, resolve(t, nodeid));
  if (!dir.image) return readdir_pseudo_root(t, offset, sink);
  const AttachedImage& image = *dir.image;
  Status failure;
  bool emitted = false;
  auto st = image.image->read_dir(dir.inode, offset, [&](const erofs::DirEntry& d) {
    uint64_t ino = ino_of(image, d.nid);
    if (!sink.plus()) {
      if (!sink.add(d.name, ino, dtype_of(d.type), d.next_cookie)) return false;
      emitted = true;
      return true;
    }
    fuse::Entry e;
    if (is_dot_or_dotdot(d.name)) {
      // The kernel does not link "." and ".." from READDIRPLUS (no lookup count): node id 0.
      e.attr.st_ino = ino;
      e.attr.st_mode = S_IFDIR;
    } else {
      auto entry = entry_for(image, d.nid, /*counted=*/false);
      if (!entry.ok()) {
        failure = entry.error();
        return false;
      }
      e = *entry;
    }
    if (!sink.add_plus(d.name, e, d.next_cookie)) return false;
    if (e.nodeid != 0 && e.nodeid != kRootNodeId) image.lookups.fetch_add(1, std::memory_order_relaxed);
    emitted = true;
    return true;
  });
  if (!st.ok()) return image_error(image, st.error());
  if (!failure.ok() && !emitted) return failure;  // otherwise the kernel asks again from there
  return {};
}

Result<struct statvfs> ImageFs::statfs(const fuse::RequestContext& ctx, uint64_t nodeid) {
  struct statvfs s {};
  s.f_namemax = 255;
  s.f_bsize = 4096;
  s.f_frsize = 4096;
  EpochDomain::Guard guard(epochs_, ctx.worker);
  FERRY_ASSIGN(Node node, resolve(table(), nodeid));
  if (node.image) {
    const auto& sb = node.image->image->superblock();
    s.f_bsize = sb.block_size;
    s.f_frsize = sb.block_size;
    s.f_blocks = sb.blocks;
    s.f_files = sb.inodes;
  }
  return s;
}

Result<std::string> ImageFs::getxattr(const fuse::RequestContext& ctx, uint64_t nodeid,
                                      std::string_view name) {
  EpochDomain::Guard guard(epochs_, ctx.worker);
  FERRY_ASSIGN(Node node, resolve(table(), nodeid));
  if (!node.image) return Error{ENODATA, "no xattrs"};
  auto v = node.image->image->get_xattr(node.inode, name);
  if (!v.ok()) return image_error(*node.image, v.error());
  return v;
}

Result<std::string> ImageFs::listxattr(const fuse::RequestContext& ctx, uint64_t nodeid) {
  EpochDomain::Guard guard(epochs_, ctx.worker);
  FERRY_ASSIGN(Node node, resolve(table(), nodeid));
  std::string out;
  if (!node.image) return out;
  auto names = node.image->image->list_xattrs(node.inode);
  if (!names.ok()) return image_error(*node.image, names.error());
  for (const auto& n : *names) {
    out += n;
    out.push_back('\0');
  }
  return out;
}

Status ImageFs::access(const fuse::RequestContext& ctx, uint64_t nodeid, uint32_t mask) {
  EpochDomain::Guard guard(epochs_, ctx.worker);
  FERRY_TRY(resolve(table(), nodeid));
  if ((mask & W_OK) != 0) return Error{EROFS, "read-only image"};
  return {};
}

Result<uint64_t> ImageFs::lseek(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t /*fh*/,
                                uint64_t offset, uint32_t whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Error{EINVAL, "unsupported whence"};
  EpochDomain::Guard guard(epochs_, ctx.worker);
  FERRY_ASSIGN(Node node, resolve(table(), nodeid));
  if (!node.image) return Error{ENXIO, "directory"};
  auto off = node.image->image->seek(node.inode, offset, static_cast<int>(whence));
  if (!off.ok()) return image_error(*node.image, off.error());
  return off;
}

}  // namespace ferry::imagefs
