// AuthChallenge: a parsed WWW-Authenticate header (RFC 7235): the scheme and its parameters,
// e.g. Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull".
// Only the first challenge of the header is read (registries send one).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::oci {

struct AuthChallenge {
  std::string scheme;                         // lowercased: "basic", "bearer"
  std::map<std::string, std::string> params;  // names lowercased, values unquoted

  [[nodiscard]] std::string param(const std::string& name) const {
    const auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
};

// nullopt when the header has no scheme token.
std::optional<AuthChallenge> parse_auth_challenge(std::string_view header);

}  // namespace ferry::oci
