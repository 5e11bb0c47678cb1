#include "common/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

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

#if defined(__x86_64__)
// SSE 4.2's crc32 instruction computes this register update (same polynomial, reflected, no
// final xor), 8 bytes at a time: about 30x the table's speed. The blob cache checksums every
// chunk it writes (1 MiB: 3.6 ms with the table on the build machine).
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t crc, const std::byte* p, size_t n) {
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v = 0;
    std::memcpy(&v, p, sizeof v);
    c = _mm_crc32_u64(c, v);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; ++p, --n) c32 = _mm_crc32_u8(c32, static_cast<uint8_t>(*p));
  return c32;
}

bool have_sse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") != 0;
}
#endif

}  // namespace

uint32_t crc32c_update(uint32_t crc, std::span<const std::byte> data) {
#if defined(__x86_64__)
  static const bool sse42 = have_sse42();
  if (sse42) return crc32c_sse42(crc, data.data(), data.size());
#endif
  for (std::byte b : data) {
    crc = kTable[(crc ^ static_cast<uint8_t>(b)) & 0xFFU] ^ (crc >> 8U);
  }
  return crc;
}

}  // namespace ferry
