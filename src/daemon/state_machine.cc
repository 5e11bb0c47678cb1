#include "daemon/state_machine.h"

#include <string>

namespace ferry::daemon {

std::string_view to_string(DaemonState s) {
  switch (s) {
    case DaemonState::kInit:
      return "INIT";
    case DaemonState::kReady:
      return "READY";
    case DaemonState::kRunning:
      return "RUNNING";
    case DaemonState::kStopped:
      return "STOPPED";
  }
  return "UNKNOWN";
}

std::string_view to_string(DaemonEvent e) {
  switch (e) {
    case DaemonEvent::kMount:
      return "Mount";
    case DaemonEvent::kTakeover:
      return "Takeover";
    case DaemonEvent::kStart:
      return "Start";
    case DaemonEvent::kStop:
      return "Stop";
    case DaemonEvent::kExit:
      return "Exit";
  }
  return "Unknown";
}

bool StateMachine::next(DaemonState from, DaemonEvent event, DaemonState& to) {
  using S = DaemonState;
  using E = DaemonEvent;
  struct Edge {
    S from;
    E event;
    S to;
  };
  static constexpr Edge kEdges[] = {
      {S::kInit, E::kMount, S::kReady},   {S::kInit, E::kTakeover, S::kReady},
      {S::kInit, E::kStop, S::kStopped},  {S::kReady, E::kStart, S::kRunning},
      {S::kReady, E::kStop, S::kStopped}, {S::kReady, E::kExit, S::kStopped},
      {S::kRunning, E::kStop, S::kReady},
  };
  for (const auto& edge : kEdges) {
    if (edge.from == from && edge.event == event) {
      to = edge.to;
      return true;
    }
  }
  return false;
}

Result<DaemonState> StateMachine::fire(DaemonEvent event) {
  std::lock_guard lock(mu_);
  DaemonState to{};
  if (!next(state_, event, to)) {
    return Error{EINVAL, "event " + std::string(to_string(event)) + " is not allowed in state " +
                             std::string(to_string(state_))};
  }
  FERRY_TRY(action_(state_, event));
  state_ = to;
  return to;
}

DaemonState StateMachine::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

}  // namespace ferry::daemon
