#include "support/test_support.h"

#include <gtest/gtest.h>

#include <iostream>

namespace ferry::test {

void expect_clean(const Readers& readers, const std::string& label) {
  std::cout << readers.describe(label) << "\n";
  EXPECT_EQ(readers.errors(), 0U) << readers.describe(label);
  EXPECT_EQ(readers.mismatches(), 0U) << readers.describe(label);
  EXPECT_GT(readers.ops(), 0U) << label << " never read anything";
}

}  // namespace ferry::test
