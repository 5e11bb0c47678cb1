#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

namespace ferry {
namespace {

TEST(Crc32c, MatchesTheCastagnoliCheckValue) {
  std::string_view s = "123456789";
  auto bytes = std::as_bytes(std::span(s.data(), s.size()));
  // The standard check value is the finalised (xor ~0) CRC of "123456789".
  EXPECT_EQ(~crc32c_update(~0U, bytes), 0xE3069283U);
}

// The table, one byte at a time: what every on-disk checksum was written with.
uint32_t reference(uint32_t crc, std::span<const std::byte> data) {
  for (std::byte b : data) {
    crc ^= static_cast<uint8_t>(b);
    for (int k = 0; k < 8; ++k) crc = (crc & 1U) != 0 ? (crc >> 1U) ^ 0x82F63B78U : crc >> 1U;
  }
  return crc;
}

TEST(Crc32c, EqualsTheBitwiseDefinitionForEveryLengthAndAlignment) {
  std::vector<std::byte> data(300);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 131 + 7);
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n = 0; start + n <= data.size(); n += 1 + n / 8) {
      const auto s = std::span(data).subspan(start, n);
      ASSERT_EQ(crc32c_update(0x9E3779B9U, s), reference(0x9E3779B9U, s)) << start << "+" << n;
      ASSERT_EQ(crc32c_update(0, s), reference(0, s)) << start << "+" << n;
    }
  }
}

TEST(Crc32c, EmptyInputLeavesTheRegisterUnchanged) {
  EXPECT_EQ(crc32c_update(0x12345678U, {}), 0x12345678U);
}

}  // namespace
}  // namespace ferry
