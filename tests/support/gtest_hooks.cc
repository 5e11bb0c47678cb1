// Compiled into every test binary (ferry_test() in tests/CMakeLists.txt), so that it runs
// before main: the test kit reports failures to GoogleTest and asks it whether a test failed.
#include <gtest/gtest.h>

#include "kit/hooks.h"

namespace {

[[maybe_unused]] const bool kInstalled = [] {
  ferry::testkit::install_hooks({.fail = [](const std::string& what) { ADD_FAILURE() << what; },
                                 .failed = [] { return ::testing::Test::HasFailure(); }});
  return true;
}();

}  // namespace
