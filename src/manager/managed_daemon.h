// DaemonManager::Daemon: everything the manager holds for one daemon. Internal to the manager's
// .cc files (daemon_manager.h keeps it opaque).
//
// Locking: `op_mu` is held for the whole of any operation on the daemon (mount/umount of its
// images, recovery, upgrade, reattach) and guards the fields under it. `view` and `status` are
// what the API shows; they are guarded by DaemonManager::mu_ and refreshed by publish(), so a
// listing never waits for a long operation.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "ipc/supervisor.h"
#include "manager/daemon_manager.h"
#include "manager/daemon_process.h"
#include "manager/store.h"

namespace ferry::manager {

struct DaemonManager::Daemon {
  std::mutex op_mu;
  // --- guarded by op_mu
  DaemonRecord rec;
  std::unique_ptr<ipc::Supervisor> supervisor;
  DaemonProcess proc;  // the serving process (invalid when dead for good)
  // Hot standby (invalid when none): it has taken the held state over and waits READY, to start
  // by itself when `proc` exits. Any change of the state (images attached or detached, an
  // upgrade) replaces it, before the change.
  DaemonProcess standby;
  std::string standby_api;
  size_t standby_state_bytes = 0;       // the state it took over
  std::string standby_version;          // what it reported when it reached INIT
  std::atomic<int64_t> standby_pid{0};  // for views, which do not take op_mu (0: none)
  unsigned api_seq = 0;
  unsigned standby_failures = 0;
  // ferryd's own reason when the last start_process() ended with ferryd refusing its input
  // (exit status kFerrydExitRefused: not an EROFS image, an unknown backend type, ...); "" else.
  std::string refusal;
  bool removed = false;  // umounted: late death notices are ignored
  bool dead = false;     // policy none, or recovery gave up
  // --- guarded by DaemonManager::mu_
  DaemonRecord view;
  std::string status;  // "" = ask the daemon; RECOVERING, DEAD
};

// Operations report their own failures as 500s: a code the API would answer with another
// status (EINVAL "your request was wrong", EEXIST, ENOENT, EBUSY ... from deep inside) becomes EIO.
Error internal(Error e);

// ferryd's exit status when it refused its input (ferryd --help).
inline constexpr int kFerrydExitRefused = 2;

// Watch keys: the daemon id for the serving process, id + this suffix for its hot standby.
inline constexpr const char* kStandbySuffix = "#standby";

}  // namespace ferry::manager
