// DaemonManager: ferry-snapshotter's core. It starts ferryd daemons for mounts, holds each
// daemon's state and /dev/fuse fd (one ipc::Supervisor per daemon), watches every daemon
// through its pidfd and applies its recover policy when it dies (none / restart / failover),
// hot-upgrades daemons to another binary, and after its own restart finds its daemons again
// from the records in ManagerStore.
//
// Promises:
//   - One operation at a time per daemon (mount/umount/recovery/upgrade hold the daemon's own
//     mutex); upgrades are serialised with each other. Operations on different daemons run
//     concurrently. Recovery never runs on the death watcher's thread.
//   - No orphan: every process started for an attempt that failed is killed and reaped
//     before the operation returns.
//   - Daemons outlive the manager: shutdown() stops watching and closes the supervisors, but
//     leaves the daemons serving (hot standbys, which serve nothing, are killed).
//   - The manager never opens a file inside a managed mount.
//
// Errors (the system API maps them to HTTP statuses, http/error_status.h): EINVAL bad request
// (400; also a mount whose ferryd refused the image or config, with ferryd's own reason),
// EEXIST the mountpoint is taken (409), ENOENT nothing managed there (404), EAGAIN shutting
// down (503); any other code is a failure of the operation (500) whose message says what failed
// and where to look (the daemon log). Failed mounts are also recorded (kFailure).
//
// Everything outside its bookkeeping (processes, daemon APIs, time) goes through an Env
// (env.h), so that the policies are unit-tested without root (tests/manager/unit).
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "ipc/supervisor.h"
#include "manager/config.h"
#include "manager/daemon_process.h"
#include "manager/death_watcher.h"
#include "manager/env.h"
#include "manager/events.h"
#include "manager/metrics.h"
#include "manager/store.h"

namespace ferry::manager {

struct MountRequest {
  std::string mountpoint;   // absolute existing directory
  std::string bootstrap;    // absolute EROFS metadata image
  std::string config_json;  // nydusd daemon config (JSON text of an object)
};

struct MountAnswer {
  std::string daemon_id;
  std::string mountpoint;
};

struct MountView {
  std::string mountpoint;
  std::string bootstrap;
  std::string daemon_id;
};

struct DaemonView {
  DaemonRecord record;
  std::string state;        // the daemon's own, or RECOVERING / DEAD / UNKNOWN
  int64_t standby_pid = 0;  // its hot standby (0: none)
};

struct UpgradeRequest {
  std::string nydusd_path;  // required, absolute
  std::string version;      // optional: `--version` must print it
  std::string policy;       // optional, informational ("rolling")
};

struct UpgradeStep {
  std::string id;
  int64_t old_pid = 0;
  int64_t new_pid = 0;
  double duration_ms = 0;
};

struct UpgradeAnswer {
  std::string nydusd_path;
  std::string version;  // what the upgraded daemons report
  std::vector<UpgradeStep> daemons;
};

class DaemonManager {
 public:
  // `binary`: the ferryd to start (already resolved: store setting, config, or next to the
  // manager). `store`, `metrics` and `env` must outlive the manager. `env`: processes, daemon
  // APIs and time (env.h); a unit test passes its own.
  static Result<std::unique_ptr<DaemonManager>> create(ManagerConfig config, std::string binary,
                                                       ManagerStore& store, ManagerMetrics& metrics,
                                                       Env& env = Env::system());
  ~DaemonManager();  // shutdown()
  DaemonManager(const DaemonManager&) = delete;
  DaemonManager& operator=(const DaemonManager&) = delete;

  // Startup: reattach to every recorded daemon that is alive, recover those that died while
  // no manager ran, then start hot standbys. Per-daemon failures are recorded, not returned.
  void reattach_all();
  // Stops watching and recovering, kills hot standbys, closes supervisors. Idempotent.
  void shutdown();

  Result<MountAnswer> mount(const MountRequest& request);
  Status umount(const std::string& mountpoint);
  Result<UpgradeAnswer> upgrade(const UpgradeRequest& request);

  [[nodiscard]] std::vector<MountView> mounts() const;
  [[nodiscard]] std::vector<DaemonView> daemons() const;
  [[nodiscard]] Result<std::vector<EventRecord>> records(size_t limit, const std::string& daemon_id) const;
  [[nodiscard]] std::string metrics_text() const;
  [[nodiscard]] std::string binary() const;

  struct Daemon;  // one managed daemon (managed_daemon.h)

  DaemonManager(ManagerConfig config, std::string binary, ManagerStore& store, ManagerMetrics& metrics, Env& env);

 private:
  using Clock = Env::Clock;
  struct Death {
    std::string key;
    int pid = 0;
    Clock::time_point when;
  };
  // A started ferryd and its API socket.
  struct Started {
    DaemonProcess proc;
    std::string api;
    std::string version;  // as the daemon reports it
  };

  // --- daemon_manager.cc: bookkeeping, mount, umount, views ---
  std::shared_ptr<Daemon> find(const std::string& id) const;
  void publish(Daemon& d, const std::string& status);  // copies d.rec into the view
  void record(EventRecord event);
  Status persist(Daemon& d);
  // A new daemon's record (fresh id, supervisor path, configured binary and policies); not yet
  // registered or started.
  std::shared_ptr<Daemon> new_daemon(const std::string& mountpoint, bool shared);
  Result<MountAnswer> mount_dedicated(const MountRequest& request);
  Result<MountAnswer> mount_shared(const MountRequest& request);
  Result<std::shared_ptr<Daemon>> ensure_shared_daemon();
  Status umount_dedicated(const std::shared_ptr<Daemon>& d);
  Status umount_shared(const std::shared_ptr<Daemon>& d, const std::string& mountpoint);
  void forget(const std::shared_ptr<Daemon>& d);
  static ipc::Supervisor::Options supervisor_options();

  // --- spawn.cc: starting ferryd processes ---
  std::string next_api_socket(Daemon& d);
  std::vector<std::string> ferryd_argv(const Daemon& d, const std::string& binary, const std::string& api,
                                       bool upgrade) const;
  // Starts ferryd and waits for `state` (RUNNING for a fresh daemon, INIT for --upgrade);
  // on failure the process is killed and reaped and the error names the daemon log.
  // `idle`: start at nice 19 (DaemonProcess::spawn), for successors started while the daemon
  // still serves (hot standby, upgrade); never for a successor of a dead daemon.
  Result<Started> start_process(Daemon& d, const std::string& binary, bool upgrade, const std::string& state,
                                std::chrono::milliseconds deadline, bool idle = false);
  // Waits until the daemon at `api` reports `state`, failing early when `proc` dies. `urgent`
  // (a successor of a dead daemon: readers wait) polls every 400 us at most, otherwise the
  // pause grows to 5 ms so that a successor starting next to a serving daemon is not disturbed.
  Result<std::string> wait_for(DaemonProcess& proc, const std::string& api, const std::string& state,
                               std::chrono::milliseconds deadline, bool urgent = false) const;  // -> version
  // Kills and reaps `s.proc` and removes its socket file.
  void discard(Started& s);
  // Fresh state from the current process into the supervisor.
  Status fetch_state(Daemon& d, const std::string& api);
  // Starts a fresh (non-upgrade) daemon for d.rec, re-attaches shared images and bind mounts,
  // fetches its state. d.proc/api are replaced on success.
  Status start_fresh(Daemon& d, const std::string& binary);
  Status watch(Daemon& d);
  std::string log_file(const std::string& id) const;

  // --- recovery.cc: death handling, policies, hot standby ---
  void on_death(const std::string& key, int pid);
  void recovery_loop();
  void handle_death(const Death& death);
  void recover(Daemon& d, const Death& death, const std::string& how);
  // Failover with `binary` (the current one, or the old one for a rollback). Records
  // kFailover/kRollback on success, kFailure per failed attempt.
  // `before` (optional): an event to record first, once the outcome of the first attempt is
  // known (the death, kept out of the blackout).
  Status failover(Daemon& d, Clock::time_point since, const std::string& binary, EventKind kind,
                  int64_t old_pid, std::optional<EventRecord>* before = nullptr);
  Status restart(Daemon& d, Clock::time_point since, int64_t old_pid, const std::string& why);
  void ensure_standby(Daemon& d);
  void kill_standby(Daemon& d);
  // Sleeps `delay` unless shutting down (then false).
  bool backoff(std::chrono::milliseconds delay);

  // --- upgrade.cc ---
  Result<std::string> check_binary(const UpgradeRequest& request);
  Result<UpgradeStep> upgrade_one(Daemon& d, const std::string& binary);

  // --- reattach.cc ---
  void reattach(const DaemonRecord& rec);

  ManagerConfig config_;
  ManagerStore& store_;
  ManagerMetrics& metrics_;
  Env& env_;

  mutable std::mutex mu_;  // guards everything below up to the marked line, and Daemon views
  std::string binary_;
  std::map<std::string, std::shared_ptr<Daemon>> daemons_;  // by id
  std::map<std::string, std::string> mount_index_;          // mountpoint -> daemon id ("" = pending)
  std::string shared_id_;
  bool stopping_ = false;
  std::deque<Death> deaths_;
  std::condition_variable cv_;  // deaths_ / stopping_
  // ---
  std::mutex shared_mu_;   // creation of the shared daemon
  std::mutex upgrade_mu_;  // one upgrade at a time
  std::unique_ptr<DeathWatcher> watcher_;
  std::thread recovery_thread_;
};

}  // namespace ferry::manager
