#include "common/crc32c.h"

#include <array>

namespace ferry {
namespace {

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? (c >> 1U) ^ 0x82F63B78U : c >> 1U;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = make_table();

}  // namespace

uint32_t crc32c_update(uint32_t crc, std::span<const std::byte> data) {
  for (std::byte b : data) {
    crc = kTable[(crc ^ static_cast<uint8_t>(b)) & 0xFFU] ^ (crc >> 8U);
  }
  return crc;
}

}  // namespace ferry
