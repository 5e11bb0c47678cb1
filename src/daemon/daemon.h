// Daemon: one ferryd process: its images, its FUSE connection, its life cycle.
//
// Every change of state goes through the StateMachine (one owner, serialised). The API, the
// signal handler and main() call the public methods; each returns an Error whose code maps to
// an HTTP status (EINVAL 400, ENOENT 404, EEXIST 409, EAGAIN 503, others 500).
//
// Takeover path: takeover() receives fd + SavedState from the supervisor, adopts the fd as
// the session, restores the FUSE_INIT parameters into the server (no FUSE_INIT comes again)
// and reattaches the images in the same node-id slots. start() then serves; if the process
// that saved the state is gone (a crash, not a planned hand-over) and the policy is resend,
// it asks the kernel to resend what that process had read and not answered.
//
// Prepared standby: takeover() followed by start_when_predecessor_exits() leaves the daemon
// READY with everything in hand, and it starts by itself (with the resend) the moment the
// process that saved the state exits. A signal or exit() meanwhile leaves the mount alone: it
// belongs to the predecessor.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "daemon/event_waiter.h"
#include "daemon/fuse_workers.h"
#include "daemon/metrics.h"
#include "daemon/predecessor_watch.h"
#include "daemon/saved_state.h"
#include "daemon/state_machine.h"
#include "fuse/server/fuse_server.h"
#include "fuse/transport/fuse_session.h"
#include "imagefs/image_fs.h"

namespace ferry::daemon {

struct DaemonOptions {
  std::string id;
  std::string mountpoint;   // absolute
  std::string bootstrap;    // empty: a shared daemon
  std::string config_json;  // backend config of the bootstrap, as given
  std::string apisock;
  std::string supervisor;  // empty: state cannot be saved
  std::string failover_policy = "resend";
  unsigned threads = 4;
  std::chrono::milliseconds supervisor_timeout{10000};
};

// What the FUSE server serves instead of the daemon's ImageFs: a decorator around it (test
// daemons inject faults this way, e.g. a READ that never completes). Empty: the ImageFs.
using FilesystemDecorator = std::function<std::unique_ptr<fuse::Filesystem>(fuse::Filesystem& images)>;

class Daemon {
 public:
  Daemon(DaemonOptions options, const EventWaiter& events, const FilesystemDecorator& decorate = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Life cycle (each is the state machine's event of the same name).
  Status mount();
  Status takeover();
  Status start();
  // READY after a takeover only: start() once the process that saved the taken-over state has
  // exited (at once if it is gone already). Returns as soon as the watch is set up.
  Status start_when_predecessor_exits();
  Status stop();
  // Planned hand-over: stop serving (answering what is in hand), leave the mount, and ask
  // main() to exit the process.
  Status exit_keep_mount();
  // Signal: stop and unmount.
  Status shutdown();

  // Creates the FUSE worker threads ahead of start() (they park until then), so that a
  // successor waiting in INIT has no threads to create inside a failover. Optional.
  void prepare_workers();

  // Saves the state and a dup of the /dev/fuse fd to the supervisor. EAGAIN until FUSE_INIT.
  Status send_fd();

  // Shared-daemon image management (POST/PUT/DELETE /api/v1/mount?mountpoint=/SUB).
  Status attach(const std::string& sub, const std::string& source, const std::string& config_json);
  Status replace(const std::string& sub, const std::string& source, const std::string& config_json);
  Status detach(const std::string& sub);

  [[nodiscard]] DaemonState state() const { return machine_.state(); }
  [[nodiscard]] nlohmann::json info() const;
  [[nodiscard]] Result<nlohmann::json> metrics(const std::string& sub) const;
  [[nodiscard]] nlohmann::json inflight() const { return metrics_.inflight(); }
  [[nodiscard]] bool exit_requested() const { return exit_requested_.load(); }
  [[nodiscard]] bool connection_lost() const { return connection_lost_.load(); }
  [[nodiscard]] const DaemonOptions& options() const { return options_; }

 private:
  Status on_transition(DaemonState from, DaemonEvent event);
  Status do_mount();
  Status do_takeover();
  Status do_start();
  void do_stop_workers();
  Status do_unmount();
  Result<imagefs::AttachedImage> open_attached(const std::string& name, const std::string& source,
                                               const std::string& config_json);
  [[nodiscard]] SavedState snapshot() const;
  [[nodiscard]] Status resend() const;
  // Tells the kernel that the pseudo root's child `name` changed (attached, replaced or
  // detached): its dentry and the root's attributes and listing go, so the next lookup sees
  // the new truth; files open under the old one keep their inode. Deferred until start()
  // when not RUNNING.
  void invalidate_child(const std::string& name);
  void notify_child_changed(const std::string& name);  // the notifications themselves
  void on_predecessor_exit();
  void disarm_locked();

  DaemonOptions options_;
  const EventWaiter& events_;
  DaemonMetrics metrics_;
  imagefs::ImageFs fs_;
  std::unique_ptr<fuse::Filesystem> decorated_;  // served instead of fs_ when set
  fuse::FuseServer server_;
  std::optional<fuse::FuseSession> session_;
  std::unique_ptr<FuseWorkers> workers_;
  StateMachine machine_;
  mutable std::mutex ops_mu_;     // serialises every public operation (the API is concurrent)
  bool resend_on_start_ = false;  // set by a takeover whose saver is gone
  std::vector<std::string> pending_invalidations_;  // children changed before start()
  pid_t saver_pid_ = 0;
  uint64_t saver_start_time_ = 0;
  std::atomic<bool> armed_{false};  // READY, waiting for the saver to exit (changed under ops_mu_)
  bool saver_exited_ = false;       // seen exiting by the watch (it may still be an unreaped zombie)
  std::unique_ptr<PredecessorWatch> predecessor_watch_;  // reset only in the destructor
  std::atomic<bool> exit_requested_{false};
  std::atomic<bool> connection_lost_{false};
};

}  // namespace ferry::daemon
