// ManagerStore: the manager's durable memory, one SQLite database under root (ferry.db).
//
// It keeps what a restarted manager needs to find its daemons again (DaemonRecord: id, pid and
// the pid's start time, sockets, mounts, binary, policy, counters), the event history
// (EventRecord) and a few settings (e.g. the daemon binary chosen by the last upgrade, key
// "nydusd_path"). The saved daemon STATE is not stored: after a restart the manager asks each
// live daemon for a fresh one (sendfd), because a state on disk could be older than the daemon.
//
// Every write is one transaction (WAL journal, synchronous=NORMAL): a crash leaves the previous
// or the next version of a record, never half of one. A database written by a newer, unknown
// schema version is refused at open (EPROTO), an unreadable one too (naming the path).
//
// Thread-safety: all methods may be called from any thread (one connection behind a mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "manager/config.h"
#include "manager/events.h"
#include "manager/snapshot_record.h"

namespace ferry::manager {

// One image mounted for a user: at `mountpoint` (absolute, what POST /api/v1/mounts named).
struct MountRecord {
  std::string mountpoint;
  std::string bootstrap;    // absolute path of the EROFS metadata image
  std::string config_json;  // the nydusd daemon config as JSON text
  // Where the image lives inside its daemon: "/" for a dedicated daemon; "/<name>" for a
  // shared daemon (the image appears at <shared FUSE root>/<name> and is bind-mounted at
  // `mountpoint`).
  std::string daemon_path = "/";
};

struct DaemonRecord {
  std::string id;
  int64_t pid = 0;
  uint64_t start_time = 0;  // /proc/<pid>/stat field 22: tells a reused pid from the daemon
  std::string api_socket;
  std::string supervisor_path;  // empty when the policy is not failover
  std::string mountpoint;       // the daemon's own FUSE mountpoint
  bool shared = false;
  std::string binary;   // the ferryd executable it runs
  std::string version;  // what the daemon reported (GET /api/v1/daemon version.package_ver)
  RecoverPolicy policy = RecoverPolicy::kFailover;
  std::string failover_policy = "resend";
  unsigned threads = 4;
  std::vector<MountRecord> mounts;
  uint64_t failovers = 0;
  uint64_t restarts = 0;
  uint64_t upgrades = 0;
};

class ManagerStore {
 public:
  // Opens or creates the database (and its parent directory, 0700).
  static Result<std::unique_ptr<ManagerStore>> open(const std::string& path);
  ~ManagerStore();
  ManagerStore(const ManagerStore&) = delete;
  ManagerStore& operator=(const ManagerStore&) = delete;

  // Inserts or replaces the daemon and all its mounts.
  Status put_daemon(const DaemonRecord& record);
  // Removes the daemon and its mounts (no error when it does not exist).
  Status remove_daemon(std::string_view id);
  // All daemons, ordered by id, with their mounts ordered by mountpoint.
  [[nodiscard]] Result<std::vector<DaemonRecord>> daemons() const;

  // Appends an event; returns its seq. `record.seq` is ignored; `record.time_ms` 0 means now.
  // The history keeps the newest 100000 events (older ones are dropped as new ones arrive).
  Result<int64_t> append_event(const EventRecord& record);
  // The newest `limit` events (all daemons when `daemon_id` is empty), oldest first.
  [[nodiscard]] Result<std::vector<EventRecord>> events(size_t limit = 1000,
                                                        std::string_view daemon_id = {}) const;

  Status set_setting(std::string_view key, std::string_view value);
  [[nodiscard]] Result<std::optional<std::string>> setting(std::string_view key) const;

  // containerd snapshots (snapshot_records.cc). Each call is one transaction and enforces
  // containerd's rules, with errno codes the snapshotter maps to gRPC: ENOENT (no such key or
  // parent), EEXIST (the key or name is taken), EINVAL (a parent that is not committed),
  // ENOTEMPTY (removing a snapshot with children), EPERM (the snapshot's kind forbids it).
  //
  // Inserts a view or active snapshot over `parent` (empty: none) and runs `make_files(record)`
  // (the record has its id) before committing: when it fails nothing is recorded. Its times are
  // the caller's (wanted.created_ns, updated_ns).
  Result<SnapshotRecord> create_snapshot(const SnapshotRecord& wanted,
                                         const std::function<Status(const SnapshotRecord&)>& make_files);
  // The snapshot named `key` (ENOENT when there is none).
  [[nodiscard]] Result<SnapshotRecord> snapshot(std::string_view key) const;
  // The snapshot and its ancestors, nearest first, read in one transaction.
  [[nodiscard]] Result<std::vector<SnapshotRecord>> snapshot_chain(std::string_view key) const;
  // Every snapshot, ordered by id.
  [[nodiscard]] Result<std::vector<SnapshotRecord>> snapshots() const;
  // Turns the active snapshot `key` into the committed `name` with `labels`, `size` and `inodes`.
  Result<SnapshotRecord> commit_snapshot(std::string_view key, std::string_view name, const Labels& labels,
                                         int64_t size, int64_t inodes, int64_t now_ns);
  // Deletes the snapshot; returns what it was (its id names its directory).
  Result<SnapshotRecord> remove_snapshot(std::string_view key);
  // Replaces the labels of `key` (all of them, or only those in `paths`: "labels.KEY"; a path
  // "labels" means all) and its updated time.
  Result<SnapshotRecord> update_snapshot_labels(std::string_view key, const Labels& labels,
                                                const std::vector<std::string>& paths, int64_t now_ns);

  struct Impl;  // sqlite3 stays out of this header
  explicit ManagerStore(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::manager
