#include "daemon/state_machine.h"

#include <gtest/gtest.h>

#include <tuple>
#include <vector>

namespace ferry::daemon {
namespace {

using S = DaemonState;
using E = DaemonEvent;

const std::vector<S> kStates = {S::kInit, S::kReady, S::kRunning, S::kStopped};
const std::vector<E> kEvents = {E::kMount, E::kTakeover, E::kStart, E::kStop, E::kExit};

// Drives a fresh machine into `target` through legal edges.
void drive_to(StateMachine& m, S target) {
  if (target == S::kInit) return;
  if (target == S::kStopped) {
    ASSERT_TRUE(m.fire(E::kStop).ok());
    return;
  }
  ASSERT_TRUE(m.fire(E::kMount).ok());
  if (target == S::kRunning) {
    ASSERT_TRUE(m.fire(E::kStart).ok());
  }
}

TEST(StateMachine, EveryPairIsEitherTheDocumentedEdgeOrRefusedWithoutChange) {
  const std::vector<std::tuple<S, E, S>> legal = {
      {S::kInit, E::kMount, S::kReady},   {S::kInit, E::kTakeover, S::kReady},
      {S::kInit, E::kStop, S::kStopped},  {S::kReady, E::kStart, S::kRunning},
      {S::kReady, E::kStop, S::kStopped}, {S::kReady, E::kExit, S::kStopped},
      {S::kRunning, E::kStop, S::kReady}};
  for (S from : kStates) {
    for (E event : kEvents) {
      std::vector<std::pair<S, E>> actions;
      StateMachine m([&](S f, E e) {
        actions.emplace_back(f, e);
        return Status{};
      });
      drive_to(m, from);
      actions.clear();
      auto r = m.fire(event);
      bool expected_legal = false;
      S expected_to{};
      for (const auto& [f, e, t] : legal) {
        if (f == from && e == event) {
          expected_legal = true;
          expected_to = t;
        }
      }
      if (expected_legal) {
        ASSERT_TRUE(r.ok()) << to_string(from) << " " << to_string(event);
        EXPECT_EQ(*r, expected_to);
        EXPECT_EQ(m.state(), expected_to);
        ASSERT_EQ(actions.size(), 1U);
        EXPECT_EQ(actions[0].first, from);
      } else {
        ASSERT_FALSE(r.ok()) << to_string(from) << " " << to_string(event) << " should be refused";
        EXPECT_EQ(r.error().code, EINVAL);
        EXPECT_NE(r.error().message.find(std::string(to_string(event))), std::string::npos);
        EXPECT_NE(r.error().message.find(std::string(to_string(from))), std::string::npos);
        EXPECT_EQ(m.state(), from);
        EXPECT_TRUE(actions.empty()) << "an illegal event must not run an action";
      }
    }
  }
}

TEST(StateMachine, AFailedActionLeavesTheStateAsItWas) {
  StateMachine m([](S, E e) { return e == E::kMount ? Status(Error{EIO, "mount failed"}) : Status{}; });
  auto r = m.fire(E::kMount);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "mount failed");
  EXPECT_EQ(m.state(), S::kInit);
  EXPECT_TRUE(m.fire(E::kTakeover).ok());
}

}  // namespace
}  // namespace ferry::daemon
