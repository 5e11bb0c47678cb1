// What every GoogleTest binary of tests/ shares: the test kit (tests/kit, namespace
// ferry::testkit: temp dirs, processes, mounts, waits, sample images, readers), seen here as
// ferry::test, plus the few helpers that speak GoogleTest. gtest_hooks.cc, compiled into every
// test binary by ferry_test(), makes the kit report to GoogleTest (a lost request fails the test,
// FERRY_KEEP_FAILED=1 keeps a failed test's temp dir).
#pragma once

#include <string>

#include "kit/hooks.h"
#include "kit/process.h"
#include "kit/readers.h"
#include "kit/sample_image.h"
#include "kit/temp_dir.h"
#include "kit/wait.h"

namespace ferry::test {

using namespace ferry::testkit;  // NOLINT(google-build-using-namespace): the kit is the tests' vocabulary

// Prints the readers' figures and fails the test unless they read something and saw no error
// and no wrong byte.
void expect_clean(const Readers& readers, const std::string& label);

}  // namespace ferry::test
