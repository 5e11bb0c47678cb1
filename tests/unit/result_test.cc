#include "common/result.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

Result<int> half(int v) {
  if (v % 2 != 0) return Error{EINVAL, std::to_string(v) + " is odd"};
  return v / 2;
}

Result<int> quarter(int v) {
  FERRY_ASSIGN(int h, half(v));
  return half(h);
}

TEST(Result, PropagatesTheFirstErrorWithItsCode) {
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_EQ(r.error().message, "3 is odd");
  ASSERT_TRUE(quarter(8).ok());
  EXPECT_EQ(*quarter(8), 2);
}

TEST(Result, ContextPrefixesTheMessage) {
  Error e = Error{ENOENT, "no such file"}.context("opening image");
  EXPECT_EQ(e.message, "opening image: no such file");
  EXPECT_EQ(e.code, ENOENT);
}

}  // namespace
}  // namespace ferry
