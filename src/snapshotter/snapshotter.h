// Snapshotter: containerd's snapshot semantics over the manager's database and a directory tree
// laid out as containerd's overlayfs snapshotter lays it out: <dir>/<id>/fs (the snapshot's
// files) and <dir>/<id>/work (overlay's work dir, active snapshots only). Ordinary OCI layers
// are unpacked by containerd into fs; Mounts answers a bind mount (no parent) or an overlay over
// the parents' fs directories, nearest first.
//
// Errors carry errno codes the gRPC service maps as containerd does: ENOENT NotFound, EEXIST
// AlreadyExists, EINVAL InvalidArgument, EPERM/ENOTEMPTY FailedPrecondition. A failed Prepare,
// View or Commit leaves neither a record nor a directory (the record is written in the same
// transaction that makes the directories); a Remove deletes the record first, so a directory
// left by a crash is an orphan that Cleanup removes.
//
// Ferry images (ferry_labels.h): a Prepare of a blob layer commits the snapshot at once under its
// chain id and answers EEXIST (containerd then fetches nothing); the bootstrap layer is unpacked
// by containerd and its committed snapshot marked. A Prepare or View over a bootstrap gets an
// overlay whose lowest dir is that image's ferryd mount (<dir>/<bootstrap id>/mnt), started on
// the first such snapshot through the FerryMounter and stopped when the bootstrap has no child
// left: the daemon's users are exactly the bootstrap's children, so the records are the
// refcount and a restarted snapshotter needs no other state. A Prepare whose ferryd cannot
// start (registry unreachable, ...) fails and leaves no snapshot.
//
// Thread-safety: every method may be called from any thread (the store serialises writes).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "manager/snapshot_record.h"
#include "manager/store.h"
#include "snapshotter/ferry_mounter.h"

namespace ferry::snapshotter {

using manager::Labels;
using manager::SnapshotKind;
using manager::SnapshotRecord;

// One mount as containerd's types.Mount: mount -t type source target -o options.
struct Mount {
  std::string type;
  std::string source;
  std::vector<std::string> options;
  bool operator==(const Mount&) const = default;
};

struct Usage {
  int64_t size = 0;    // bytes allocated (st_blocks * 512), each inode once
  int64_t inodes = 0;  // distinct inodes, the directory itself included
};

class Snapshotter {
 public:
  // `dir` holds the snapshot directories (created 0700 if missing).
  static Result<Snapshotter> open(manager::ManagerStore& store, std::string dir);

  Result<std::vector<Mount>> prepare(const std::string& key, const std::string& parent, const Labels& labels);
  Result<std::vector<Mount>> view(const std::string& key, const std::string& parent, const Labels& labels);
  Result<std::vector<Mount>> mounts(const std::string& key) const;
  Status commit(const std::string& name, const std::string& key, const Labels& labels);
  Status remove(const std::string& key);
  [[nodiscard]] Result<SnapshotRecord> stat(const std::string& key) const;
  // Changes labels only: `paths` empty or "labels" replaces all, "labels.KEY" one; any other path
  // is EINVAL. `info.key` names the snapshot.
  Result<SnapshotRecord> update(const SnapshotRecord& info, const std::vector<std::string>& paths);
  [[nodiscard]] Result<Usage> usage(const std::string& key) const;
  [[nodiscard]] Result<std::vector<SnapshotRecord>> list() const;
  // Removes every directory under `dir` that no record names; returns how many.
  Result<size_t> cleanup();

  // Installs the ferryd starter (not owned; must outlive the snapshotter). Until then a Prepare
  // or View over a Ferry image fails with EAGAIN (Unavailable).
  void set_ferry_mounter(FerryMounter* mounter);

  [[nodiscard]] std::string fs_dir(int64_t id) const;
  [[nodiscard]] std::string mnt_dir(int64_t id) const;  // a Ferry bootstrap's ferryd mountpoint
  [[nodiscard]] std::string work_dir(int64_t id) const;
  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  struct Ferry {
    std::mutex mu;  // serialises ferryd starts and stops with the records that count their users
    FerryMounter* mounter = nullptr;
  };
  Snapshotter(manager::ManagerStore& store, std::string dir)
      : store_(&store), dir_(std::move(dir)), ferry_(std::make_shared<Ferry>()) {}
  Result<std::vector<Mount>> create_checked(SnapshotKind kind, const std::string& key, const std::string& parent,
                                            const Labels& labels);
  Result<std::vector<Mount>> prepare_blob(const std::string& key, const std::string& parent, const Labels& labels);
  // The image served for a snapshot over `parent_chain` (nearest first): its bootstrap's index.
  static std::optional<size_t> bootstrap_in(const std::vector<SnapshotRecord>& chain, size_t from);
  Status ensure_ferryd(const std::vector<SnapshotRecord>& parent_chain, size_t bootstrap, bool& started);
  // Stops the bootstrap's ferryd when no snapshot has it as parent any more (ferry_->mu held).
  void release_ferryd_if_unused(const SnapshotRecord& bootstrap);
  Result<std::vector<Mount>> create(SnapshotKind kind, const std::string& key, const std::string& parent,
                                    const Labels& labels);
  [[nodiscard]] std::vector<Mount> mounts_of(const std::vector<SnapshotRecord>& chain) const;

  manager::ManagerStore* store_;
  std::string dir_;
  std::shared_ptr<Ferry> ferry_;  // shared: a Snapshotter is movable, a mutex is not
};

// Checks labels as containerd does: a key plus its value at most 4096 bytes, no empty key.
Status validate_labels(const Labels& labels);

// What a directory tree occupies (lstat, not following links, each inode counted once).
Result<Usage> disk_usage(const std::string& path);

}  // namespace ferry::snapshotter
