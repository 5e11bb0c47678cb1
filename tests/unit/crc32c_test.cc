#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string_view>

namespace ferry {
namespace {

TEST(Crc32c, MatchesTheCastagnoliCheckValue) {
  std::string_view s = "123456789";
  auto bytes = std::as_bytes(std::span(s.data(), s.size()));
  // The standard check value is the finalised (xor ~0) CRC of "123456789".
  EXPECT_EQ(~crc32c_update(~0U, bytes), 0xE3069283U);
}

TEST(Crc32c, EmptyInputLeavesTheRegisterUnchanged) {
  EXPECT_EQ(crc32c_update(0x12345678U, {}), 0x12345678U);
}

}  // namespace
}  // namespace ferry
