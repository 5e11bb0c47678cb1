// The README's main job (scripts/demo.sh) must keep working: it builds an image, starts
// ferry-snapshotter with recover_policy = "failover", mounts through ferryctl, kills the daemon
// and hot-upgrades it under a verifying reader, and must report zero errors. Run against this
// build tree (--no-build) so the test checks exactly the binaries the suite built.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "support/test_support.h"

namespace ferry::test {
namespace {

TEST(DemoTest, MainJobSummaryReportsZeroErrors) {
  std::string out;
  const std::string cmd = std::string("bash ") + FERRY_SOURCE_DIR +
                          "/scripts/demo.sh --no-build --crashes 3 --build-dir " + FERRY_BINARY_DIR;
  const int status = run_shell(cmd, &out);
  std::smatch m;
  const std::regex summary(R"(summary: (\d+) verified reads, (\d+) errors, (\d+) wrong bytes)");
  ASSERT_TRUE(std::regex_search(out, m, summary)) << "no summary line in the demo's output:\n" << out;
  EXPECT_GT(std::stoull(m[1]), 0U) << out;
  EXPECT_EQ(m[2], "0") << out;
  EXPECT_EQ(m[3], "0") << out;
  EXPECT_EQ(status, 0) << out;
  // Three failovers and one upgrade, each reported with the blackout the reader saw.
  const std::regex crash_line("crash +blackout");
  EXPECT_EQ(std::distance(std::sregex_iterator(out.begin(), out.end(), crash_line), std::sregex_iterator()),
            3)
      << out;
  EXPECT_NE(out.find("upgrade  blackout"), std::string::npos) << out;
  EXPECT_NE(out.find("0.1.0+next"), std::string::npos) << "the upgrade did not change the version:\n" << out;
}

}  // namespace
}  // namespace ferry::test
