// CRC-32C (Castagnoli), as used by the EROFS superblock checksum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ferry {

// Continues a CRC-32C over data. EROFS seeds with ~0 and stores the raw register (no final xor).
uint32_t crc32c_update(uint32_t crc, std::span<const std::byte> data);

}  // namespace ferry
