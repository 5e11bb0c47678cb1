// A guard for untrusted JSON before nlohmann parses it: nesting deeper than a manifest or a
// config ever needs would make later recursive walks (dump) deep enough to exhaust the stack.
#pragma once

#include <string_view>

namespace ferry::oci {

inline constexpr int kMaxJsonDepth = 64;

// True when arrays/objects nest deeper than `limit` (brackets inside strings do not count).
bool json_too_deep(std::string_view text, int limit = kMaxJsonDepth);

}  // namespace ferry::oci
