// Little-endian decoding of on-disk integers from unaligned bytes.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ferry {

template <typename T>
inline T load_le(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  static_assert(std::endian::native == std::endian::little || sizeof(T) == 1,
                "big-endian hosts need byte swapping here");
  return v;
}

}  // namespace ferry
