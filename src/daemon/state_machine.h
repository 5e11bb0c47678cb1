// StateMachine: the daemon's life cycle, exactly nydusd's state machine (the transitions of
// nydusd's daemon, which nydus-snapshotter drives over the API; this table is the reference):
//
//   INIT    --Mount-->    READY     mount the filesystem instances
//   INIT    --Takeover--> READY     restore fd + state from the supervisor
//   INIT    --Stop-->     STOPPED
//   READY   --Start-->    RUNNING   start the FUSE workers
//   READY   --Stop-->     STOPPED   unmount
//   READY   --Exit-->     STOPPED   leave the mount to a successor
//   RUNNING --Stop-->     READY     stop the workers (they answer what they hold first)
//
// Any other (state, event) pair is refused with EINVAL naming both, and changes nothing.
// A transition's action runs under the machine's lock, so API calls and signals that race
// are serialised; a failed action leaves the state as it was.
#pragma once

#include <functional>
#include <mutex>
#include <string_view>

#include "common/result.h"

namespace ferry::daemon {

enum class DaemonState { kInit, kReady, kRunning, kStopped };
enum class DaemonEvent { kMount, kTakeover, kStart, kStop, kExit };

std::string_view to_string(DaemonState s);  // "INIT", "READY", "RUNNING", "STOPPED"
std::string_view to_string(DaemonEvent e);  // "Mount", "Takeover", "Start", "Stop", "Exit"

class StateMachine {
 public:
  using Action = std::function<Status(DaemonState from, DaemonEvent event)>;

  // `action` performs the work of every legal transition (it is told which one).
  explicit StateMachine(Action action) : action_(std::move(action)) {}

  // Applies the event: the new state, or EINVAL for an illegal pair, or the action's error.
  Result<DaemonState> fire(DaemonEvent event);
  [[nodiscard]] DaemonState state() const;

  // The target of (state, event), if legal.
  static bool next(DaemonState from, DaemonEvent event, DaemonState& to);

 private:
  Action action_;
  mutable std::mutex mu_;
  DaemonState state_ = DaemonState::kInit;
};

}  // namespace ferry::daemon
