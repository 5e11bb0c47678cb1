// How the test kit reports to the test framework without depending on one: a test binary installs
// hooks (tests/support/gtest_hooks.cc does it for GoogleTest); benchmarks install none and get the
// defaults (a failure is printed on stderr, no test has failed).
//
// Install once, before any kit object exists; the functions are then safe from any thread.
#pragma once

#include <string>

namespace ferry::testkit {

struct Hooks {
  void (*fail)(const std::string& what) = nullptr;  // records a failure of the running test
  bool (*failed)() = nullptr;                       // has the running test failed?
};

void install_hooks(Hooks hooks);
// Fails the running test (or prints `what` on stderr without a hook).
void report_failure(const std::string& what);
// True when the running test has failed (false without a hook).
bool test_failed();

}  // namespace ferry::testkit
