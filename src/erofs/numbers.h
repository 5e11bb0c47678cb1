// Number formatting for error messages (hex feature bits, octal modes). Used only on failure
// paths, so plain std::string building is fine here.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace ferry::erofs {

inline std::string to_hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

inline std::string to_octal(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0%llo", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace ferry::erofs
