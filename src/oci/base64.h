// Standard base64 (RFC 4648, with padding) and its URL-safe unpadded variant, for HTTP Basic
// credentials, docker config.json `auth` values and JWT segments in tests.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ferry::oci {

std::string base64_encode(std::string_view bytes);
// Accepts padded or unpadded input, ignores nothing else: nullopt on any invalid character.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace ferry::oci
