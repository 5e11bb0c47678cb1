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

Result<std::vector<Mount>> Snapshotter::create(SnapshotKind kind, const std::string& key,
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
  if (chain.size() == 1) {
    return {Mount{"bind", fs_dir(s.id), {active ? "rw" : "ro", "rbind"}}};
  }
  if (!active && chain.size() == 2) {
    return {Mount{"bind", fs_dir(chain[1].id), {"ro", "rbind"}}};
  }
  std::vector<std::string> options;
  if (overlay_knows_index()) options.emplace_back("index=off");
  if (active) {
    options.push_back("workdir=" + work_dir(s.id));
    options.push_back("upperdir=" + fs_dir(s.id));
  }
  std::string lower = "lowerdir=";
  for (size_t i = 1; i < chain.size(); ++i) {
    if (i > 1) lower += ':';
    lower += fs_dir(chain[i].id);
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
  FERRY_ASSIGN(Usage u, disk_usage(fs_dir(r.id)));
  FERRY_ASSIGN(SnapshotRecord done, store_->commit_snapshot(key, name, labels, u.size, u.inodes, now_ns()));
  // A committed snapshot is never an upper dir again: its work dir goes.
  if (Status st = remove_tree(work_dir(done.id)); !st.ok())
    spdlog::warn("snapshotter: {}", st.error().message);
  return ok_status();
}

Status Snapshotter::remove(const std::string& key) {
  FERRY_ASSIGN(SnapshotRecord r, store_->remove_snapshot(key));
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
