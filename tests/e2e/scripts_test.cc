// The README's first commands: they run in a root shell as they are written (no sudo, which a
// minimal Debian 12 does not have), and each script says what to do when it is not run as root,
// without doing anything.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "support/test_support.h"

namespace ferry::test {
namespace {

TEST(Scripts, TheReadmesFirstCommandsNeedNoSudo) {
  const std::string readme = read_file(std::string(FERRY_SOURCE_DIR) + "/README.md");
  const size_t open = readme.find("```sh\n");
  ASSERT_NE(open, std::string::npos);
  const size_t close = readme.find("```", open + 6);
  ASSERT_NE(close, std::string::npos);
  const std::string first = readme.substr(open, close - open);
  EXPECT_EQ(first.find("sudo"), std::string::npos) << first;
  EXPECT_NE(first.find("scripts/setup.sh && scripts/demo.sh"), std::string::npos) << first;
  EXPECT_NE(first.find("scripts/test.sh"), std::string::npos) << first;
}

TEST(Scripts, NotRootTheyRefuseAndSayWhatToDo) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the scripts as another user";
  for (const std::string script : {"setup.sh", "demo.sh", "test.sh"}) {
    SCOPED_TRACE(script);
    std::string out;
    // As nobody (no capabilities): setup must not reach apt-get, demo and test must not build.
    const int status = test::run_shell("setpriv --reuid=65534 --regid=65534 --clear-groups bash " +
                               std::string(FERRY_SOURCE_DIR) + "/scripts/" + script + " 2>&1",
                           &out);
    EXPECT_NE(status, 0) << out;
    EXPECT_NE(out.find("run as root"), std::string::npos) << out;
    EXPECT_NE(out.find("su -c scripts/" + script), std::string::npos) << out;
    EXPECT_EQ(out.find("=="), std::string::npos) << "it started working: " << out;
  }
}

}  // namespace
}  // namespace ferry::test
