#include "snapshotter/snapshotter.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include "common/dirs.h"
#include "common/unique_fd.h"
#include "snapshotter/ferry_labels.h"

namespace ferry::snapshotter {
namespace {

constexpr size_t kMaxLabelBytes = 4096;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return Error{ec.value(), "cannot remove '" + path + "': " + ec.message()};
  return ok_status();
}

Status make_dir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) return errno_error("cannot create '" + path + "'");
  // mkdir's mode passes through the umask; the layout's modes must not depend on it.
  if (::chmod(path.c_str(), mode) != 0) return errno_error("cannot chmod '" + path + "'");
  return ok_status();
}

// A container's root directory is its upper dir's: like containerd, give a new upper dir the
// owner and mode of the parent's root, so the image's "/" attributes show through.
Status copy_owner_and_mode(const std::string& from, const std::string& to) {
  struct stat st {};
  if (::stat(from.c_str(), &st) != 0) return errno_error("cannot stat '" + from + "'");
  if (::lchown(to.c_str(), st.st_uid, st.st_gid) != 0) return errno_error("cannot chown '" + to + "'");
  if (::chmod(to.c_str(), st.st_mode & 07777) != 0) return errno_error("cannot chmod '" + to + "'");
  return ok_status();
}

// containerd turns overlay's inode index off where the module knows the option, so an upper dir
// can be mounted again over lower dirs that moved.
bool overlay_knows_index() {
  return ::access("/sys/module/overlay/parameters/index", F_OK) == 0;
}

struct InodeId {
  dev_t dev;
  ino_t ino;
  bool operator<(const InodeId& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

Status walk(int dirfd, const std::string& path, std::set<InodeId>& seen, Usage& usage) {
  UniqueFd own(::dup(dirfd));
  if (!own) return errno_error("cannot read '" + path + "'");
  DIR* d = ::fdopendir(own.get());
  if (d == nullptr) return errno_error("cannot read '" + path + "'");
  (void)own.release();  // the DIR owns it now
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    struct stat st {};
    if (::fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return errno_error("cannot stat '" + path + "/" + e->d_name + "'");
    }
    if (seen.insert({st.st_dev, st.st_ino}).second) {
      usage.inodes++;
      usage.size += static_cast<int64_t>(st.st_blocks) * 512;
    }
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return errno_error("cannot open '" + path + "/" + e->d_name + "'");
      FERRY_TRY(walk(sub.get(), path + "/" + e->d_name, seen, usage));
    }
  }
  return ok_status();
}

}  // namespace

Status validate_labels(const Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (k.empty()) return Error{EINVAL, "a label has an empty key"};
    if (k.size() + v.size() > kMaxLabelBytes) {
      return Error{EINVAL, "label '" + k.substr(0, 64) + "': key and value are " +
                               std::to_string(k.size() + v.size()) + " bytes, at most " +
                               std::to_string(kMaxLabelBytes) + " are allowed"};
    }
  }
  return ok_status();
}

Result<Usage> disk_usage(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errno_error("cannot open '" + path + "'");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat '" + path + "'");
  std::set<InodeId> seen{{st.st_dev, st.st_ino}};
  Usage usage{static_cast<int64_t>(st.st_blocks) * 512, 1};
  FERRY_TRY(walk(fd.get(), path, seen, usage));
  return usage;
}

Result<Snapshotter> Snapshotter::open(manager::ManagerStore& store, std::string dir) {
  if (dir.empty() || dir.front() != '/')
    return Error{EINVAL, "snapshot directory '" + dir + "' is not absolute"};
  FERRY_TRY(make_dirs(dir, 0700));
  return Snapshotter(store, std::move(dir));
}

std::string Snapshotter::fs_dir(int64_t id) const {
  return dir_ + "/" + std::to_string(id) + "/fs";
}
std::string Snapshotter::work_dir(int64_t id) const {
  return dir_ + "/" + std::to_string(id) + "/work";
}
std::string Snapshotter::mnt_dir(int64_t id) const {
  return dir_ + "/" + std::to_string(id) + "/mnt";
}

void Snapshotter::set_ferry_mounter(FerryMounter* mounter) {
  std::lock_guard lk(ferry_->mu);
  ferry_->mounter = mounter;
}

std::optional<size_t> Snapshotter::bootstrap_in(const std::vector<SnapshotRecord>& chain, size_t from) {
  for (size_t i = from; i < chain.size(); ++i) {
    auto boot = is_ferry_bootstrap(chain[i].labels);
    if (chain[i].kind == SnapshotKind::kCommitted && boot.ok() && *boot) return i;
  }
  return std::nullopt;
}

Status Snapshotter::ensure_ferryd(const std::vector<SnapshotRecord>& parent_chain, size_t bootstrap,
                                  bool& started) {
  FerryMounter* mounter = ferry_->mounter;
  if (mounter == nullptr) {
    return Error{EAGAIN, "ferry-snapshotter is starting up: its daemon manager is not ready yet (retry)"};
  }
  const SnapshotRecord& boot = parent_chain[bootstrap];
  const std::string mountpoint = mnt_dir(boot.id);
  if (mounter->mounted(mountpoint)) return ok_status();
  FERRY_ASSIGN(oci::ImageReference ref, ferry_image_ref(boot.labels));
  FerryImage image{mountpoint, fs_dir(boot.id) + "/" + std::string(oci::kBootstrapPathInLayer), std::move(ref), ""};
  for (size_t i = bootstrap + 1; i < parent_chain.size() && image.blob_digest.empty(); ++i) {
    auto digest = layer_digest(parent_chain[i].labels);
    if (digest.ok()) image.blob_digest = *digest;
  }
  if (::mkdir(mountpoint.c_str(), 0755) != 0 && errno != EEXIST) {
    return errno_error("cannot create the mountpoint '" + mountpoint + "'");
  }
  if (Status st = mounter->mount(image); !st.ok()) {
    return Error{st.error().code, "image " + image.ref.str() + " (bootstrap snapshot '" + boot.key +
                                      "'): cannot start its ferryd: " + st.error().message};
  }
  spdlog::info("snapshotter: ferryd serves image {} at '{}'", image.ref.str(), mountpoint);
  started = true;
  return ok_status();
}

void Snapshotter::release_ferryd_if_unused(const SnapshotRecord& bootstrap) {
  FerryMounter* mounter = ferry_->mounter;
  const std::string mountpoint = mnt_dir(bootstrap.id);
  if (mounter == nullptr || !mounter->mounted(mountpoint)) return;
  auto all = store_->snapshots();
  if (!all.ok()) {
    spdlog::warn("snapshotter: cannot tell whether '{}' is still used: {}", mountpoint, all.error().message);
    return;
  }
  for (const SnapshotRecord& r : *all) {
    if (r.parent == bootstrap.key) return;
  }
  if (Status st = mounter->umount(mountpoint); !st.ok()) {
    spdlog::warn("snapshotter: cannot stop the ferryd at '{}': {}", mountpoint, st.error().message);
    return;
  }
  spdlog::info("snapshotter: ferryd at '{}' stopped (no snapshot uses bootstrap '{}' any more)", mountpoint,
               bootstrap.key);
}

Result<std::vector<Mount>> Snapshotter::create(SnapshotKind kind, const std::string& key,
                                               const std::string& parent, const Labels& labels) {
  if (parent.empty()) return create_checked(kind, key, parent, labels);
  auto chain = store_->snapshot_chain(parent);
  // A parent that is missing is reported by create_checked, with containerd's wording.
  if (!chain.ok()) return create_checked(kind, key, parent, labels);
  auto bootstrap = bootstrap_in(*chain, 0);
  if (!bootstrap) return create_checked(kind, key, parent, labels);
  // The daemon serves before the snapshot exists: a snapshot never names a mount that is not
  // there, and a failed start leaves no snapshot behind.
  std::lock_guard lk(ferry_->mu);
  bool started = false;
  FERRY_TRY(validate_labels(labels));
  FERRY_TRY(ensure_ferryd(*chain, *bootstrap, started));
  auto made = create_checked(kind, key, parent, labels);
  if (!made.ok() && started) release_ferryd_if_unused((*chain)[*bootstrap]);
  return made;
}

Result<std::vector<Mount>> Snapshotter::prepare_blob(const std::string& key, const std::string& parent,
                                                     const Labels& labels) {
  auto ref = labels.find(std::string(kSnapshotRef));
  if (ref == labels.end() || ref->second.empty()) {
    return Error{EINVAL, "a Ferry blob layer ('" + std::string(kFerryBlob) + "') needs the label '" +
                             std::string(kSnapshotRef) +
                             "' (its chain id): pull Ferry images with `ctr-remote images rpull` or through CRI"};
  }
  FERRY_TRY(ferry_image_ref(labels));
  FERRY_TRY(layer_digest(labels));
  FERRY_TRY(validate_labels(labels));
  const std::string& name = ref->second;
  if (store_->snapshot(name).ok()) return Error{EEXIST, "snapshot '" + name + "' already exists"};
  const Labels kept = ferry_labels_kept(labels);
  FERRY_TRY(create_checked(SnapshotKind::kActive, key, parent, kept));
  if (Status st = commit(name, key, kept); !st.ok()) {
    if (Status rm = remove(key); !rm.ok()) spdlog::warn("snapshotter: {}", rm.error().message);
    return std::move(st).error();
  }
  // containerd takes AlreadyExists as "found under the ref" and downloads nothing.
  return Error{EEXIST, "Ferry blob layer '" + name + "' is committed without a download (read lazily)"};
}

Result<std::vector<Mount>> Snapshotter::create_checked(SnapshotKind kind, const std::string& key,
                                                       const std::string& parent, const Labels& labels) {
  if (key.empty()) return Error{EINVAL, "the snapshot key is empty"};
  FERRY_TRY(validate_labels(labels));
  SnapshotRecord wanted;
  wanted.key = key;
  wanted.parent = parent;
  wanted.kind = kind;
  wanted.labels = labels;
  wanted.created_ns = wanted.updated_ns = now_ns();
  // The parent's directory (its record is checked again inside the transaction).
  std::string parent_fs;
  if (!parent.empty()) {
    auto p = store_->snapshot(parent);
    if (!p.ok() && p.error().code == ENOENT) {
      return Error{ENOENT, "parent snapshot '" + parent + "' does not exist"};
    }
    if (!p.ok()) return std::move(p).error();
    parent_fs = fs_dir(p->id);
  }
  auto make_files = [this, &parent_fs](const SnapshotRecord& r) -> Status {
    const std::string top = dir_ + "/" + std::to_string(r.id);
    // An id whose transaction rolled back is handed out again: its leftovers go first.
    FERRY_TRY(remove_tree(top));
    // Modes as containerd's overlayfs snapshotter makes them.
    Status st = make_dir(top, 0700);
    if (st.ok()) st = make_dir(fs_dir(r.id), 0755);
    if (st.ok() && r.kind == SnapshotKind::kActive) st = make_dir(work_dir(r.id), 0711);
    if (st.ok() && r.kind == SnapshotKind::kActive && !parent_fs.empty()) {
      st = copy_owner_and_mode(parent_fs, fs_dir(r.id));
    }
    if (!st.ok()) {
      Status rm = remove_tree(top);
      if (!rm.ok()) spdlog::warn("snapshotter: {}", rm.error().message);
    }
    return st;
  };
  FERRY_ASSIGN(SnapshotRecord made, store_->create_snapshot(wanted, make_files));
  FERRY_ASSIGN(auto chain, store_->snapshot_chain(made.key));
  return mounts_of(chain);
}

Result<std::vector<Mount>> Snapshotter::prepare(const std::string& key, const std::string& parent,
                                                const Labels& labels) {
  FERRY_ASSIGN(bool blob, is_ferry_blob(labels));
  if (blob) return prepare_blob(key, parent, labels);
  FERRY_ASSIGN(bool bootstrap, is_ferry_bootstrap(labels));
  // Checked before containerd unpacks anything: a bootstrap that could never be served is refused.
  if (bootstrap) FERRY_TRY(ferry_image_ref(labels));
  return create(SnapshotKind::kActive, key, parent, labels);
}

Result<std::vector<Mount>> Snapshotter::view(const std::string& key, const std::string& parent,
                                             const Labels& labels) {
  return create(SnapshotKind::kView, key, parent, labels);
}

Result<std::vector<Mount>> Snapshotter::mounts(const std::string& key) const {
  FERRY_ASSIGN(auto chain, store_->snapshot_chain(key));
  if (chain.front().kind == SnapshotKind::kCommitted) {
    return Error{EPERM, "snapshot '" + key + "' is committed: only active snapshots and views have mounts"};
  }
  return mounts_of(chain);
}

std::vector<Mount> Snapshotter::mounts_of(const std::vector<SnapshotRecord>& chain) const {
  const SnapshotRecord& s = chain.front();
  const bool active = s.kind == SnapshotKind::kActive;
  std::vector<std::string> lowers;
  const auto bootstrap = bootstrap_in(chain, 1);
  // A Ferry image: the layers above the bootstrap, then the ferryd mount (the blob layers below
  // the bootstrap are empty).
  for (size_t i = 1; bootstrap && i < *bootstrap; ++i) lowers.push_back(fs_dir(chain[i].id));
  if (bootstrap) lowers.push_back(mnt_dir(chain[*bootstrap].id));
  if (bootstrap && !active && lowers.size() == 1) return {Mount{"bind", lowers.front(), {"ro", "rbind"}}};
  if (!bootstrap && chain.size() == 1) {
    return {Mount{"bind", fs_dir(s.id), {active ? "rw" : "ro", "rbind"}}};
  }
  if (!bootstrap && !active && chain.size() == 2) {
    return {Mount{"bind", fs_dir(chain[1].id), {"ro", "rbind"}}};
  }
  std::vector<std::string> options;
  if (overlay_knows_index()) options.emplace_back("index=off");
  if (active) {
    options.push_back("workdir=" + work_dir(s.id));
    options.push_back("upperdir=" + fs_dir(s.id));
  }
  if (!bootstrap) {
    for (size_t i = 1; i < chain.size(); ++i) lowers.push_back(fs_dir(chain[i].id));
  }
  std::string lower = "lowerdir=";
  for (size_t i = 0; i < lowers.size(); ++i) {
    if (i > 0) lower += ':';
    lower += lowers[i];
  }
  options.push_back(std::move(lower));
  return {Mount{"overlay", "overlay", std::move(options)}};
}

Status Snapshotter::commit(const std::string& name, const std::string& key, const Labels& labels) {
  FERRY_TRY(validate_labels(labels));
  FERRY_ASSIGN(SnapshotRecord r, store_->snapshot(key));
  if (r.kind != SnapshotKind::kActive) {
    return Error{EPERM, "snapshot '" + key + "' is not active: only an active snapshot can be committed"};
  }
  Labels final_labels = labels;
  auto bootstrap = is_ferry_bootstrap(r.labels);
  if (bootstrap.ok() && *bootstrap) {
    // The committed bootstrap keeps what marks it, whatever labels the Commit carries.
    const std::string boot = fs_dir(r.id) + "/" + std::string(oci::kBootstrapPathInLayer);
    struct stat st {};
    if (::lstat(boot.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Error{EINVAL, "snapshot '" + key + "' is labelled '" + std::string(kFerryBootstrap) +
                               "' but its layer holds no regular file " + std::string(oci::kBootstrapPathInLayer)};
    }
    for (auto& kv : ferry_labels_kept(r.labels)) final_labels.insert(kv);
    FERRY_TRY(validate_labels(final_labels));
  }
  FERRY_ASSIGN(Usage u, disk_usage(fs_dir(r.id)));
  FERRY_ASSIGN(SnapshotRecord done,
               store_->commit_snapshot(key, name, final_labels, u.size, u.inodes, now_ns()));
  // A committed snapshot is never an upper dir again: its work dir goes.
  if (Status st = remove_tree(work_dir(done.id)); !st.ok())
    spdlog::warn("snapshotter: {}", st.error().message);
  return ok_status();
}

Status Snapshotter::remove(const std::string& key) {
  auto chain = store_->snapshot_chain(key);
  const auto bootstrap = chain.ok() ? bootstrap_in(*chain, 0) : std::nullopt;
  std::unique_lock lk(ferry_->mu, std::defer_lock);
  if (bootstrap) lk.lock();
  FERRY_ASSIGN(SnapshotRecord r, store_->remove_snapshot(key));
  if (bootstrap && *bootstrap > 0) release_ferryd_if_unused((*chain)[*bootstrap]);
  if (bootstrap && *bootstrap == 0 && ferry_->mounter != nullptr && ferry_->mounter->mounted(mnt_dir(r.id))) {
    // Its children are gone, so is its daemon normally; never delete files under a live mount.
    if (Status st = ferry_->mounter->umount(mnt_dir(r.id)); !st.ok()) {
      spdlog::warn("snapshotter: removed bootstrap '{}' but its ferryd stays mounted (Cleanup retries): {}", key,
                   st.error().message);
      return ok_status();
    }
  }
  // The record is gone: a directory that cannot be removed now is an orphan for Cleanup.
  if (Status st = remove_tree(dir_ + "/" + std::to_string(r.id)); !st.ok()) {
    spdlog::warn("snapshotter: removed snapshot '{}' but not its files (Cleanup retries): {}", key,
                 st.error().message);
  }
  return ok_status();
}

Result<SnapshotRecord> Snapshotter::stat(const std::string& key) const {
  return store_->snapshot(key);
}

Result<SnapshotRecord> Snapshotter::update(const SnapshotRecord& info,
                                           const std::vector<std::string>& paths) {
  for (const std::string& p : paths) {
    if (p != "labels" && (p.rfind("labels.", 0) != 0 || p.size() == std::string_view("labels.").size())) {
      return Error{EINVAL, "cannot update field '" + p + "' of snapshot '" + info.key +
                               "': only labels (\"labels\" or \"labels.KEY\") can change"};
    }
  }
  FERRY_TRY(validate_labels(info.labels));
  return store_->update_snapshot_labels(info.key, info.labels, paths, now_ns());
}

Result<Usage> Snapshotter::usage(const std::string& key) const {
  FERRY_ASSIGN(SnapshotRecord r, store_->snapshot(key));
  if (r.kind == SnapshotKind::kCommitted) return Usage{r.size, r.inodes};
  return disk_usage(fs_dir(r.id));
}

Result<std::vector<SnapshotRecord>> Snapshotter::list() const {
  return store_->snapshots();
}

Result<size_t> Snapshotter::cleanup() {
  FERRY_ASSIGN(auto records, store_->snapshots());
  std::set<std::string> known;
  int64_t max_id = 0;
  for (const auto& r : records) {
    known.insert(std::to_string(r.id));
    max_id = std::max(max_id, r.id);
  }
  size_t removed = 0;
  std::error_code ec;
  std::vector<std::string> orphans;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (known.count(name) != 0) continue;
    // A snapshot created after the records were read has a higher id: its directory is not an
    // orphan but work in progress.
    char* end = nullptr;
    long long id = std::strtoll(name.c_str(), &end, 10);
    if (!name.empty() && *end == '\0' && id > max_id) continue;
    // A ferryd still mounted there (its stop failed): never delete files under a live mount.
    std::lock_guard lk(ferry_->mu);
    if (ferry_->mounter != nullptr && ferry_->mounter->mounted(entry.path().string() + "/mnt")) {
      Status st = ferry_->mounter->umount(entry.path().string() + "/mnt");
      if (!st.ok()) {
        spdlog::warn("snapshotter: cleanup keeps '{}': {}", entry.path().string(), st.error().message);
        continue;
      }
    }
    orphans.push_back(entry.path().string());
  }
  if (ec) return Error{ec.value(), "cannot list '" + dir_ + "': " + ec.message()};
  for (const std::string& path : orphans) {
    FERRY_TRY(remove_tree(path));
    spdlog::info("snapshotter: cleanup removed '{}' (no snapshot record names it)", path);
    removed++;
  }
  return removed;
}

}  // namespace ferry::snapshotter
