// Credentials for a registry, from a USER:PASS flag, a base64 "user:pass" (nydusd's `auth`,
// docker config.json's `auth`), a docker config.json (`auths`), or a static bearer token
// (nydusd's `registry_token`).
//
// Credentials never appear in logs or messages: there is deliberately no to_string, and
// errors about them name the file and the registry, never the values.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace ferry::oci {

struct Credentials {
  std::string username;
  std::string password;
  std::string registry_token;  // used as "Bearer TOKEN" as is, with no token exchange

  [[nodiscard]] bool has_basic() const { return !username.empty() || !password.empty(); }
  [[nodiscard]] bool empty() const { return !has_basic() && registry_token.empty(); }

  // "USER:PASS" (the password may contain ':'); EINVAL without a ':' or with an empty user.
  static Result<Credentials> from_user_pass(std::string_view user_pass);
  // base64("USER:PASS").
  static Result<Credentials> from_base64(std::string_view auth);
};

// $DOCKER_CONFIG/config.json if DOCKER_CONFIG is set, else $HOME/.docker/config.json.
std::string default_authfile();

// The entry of `auths` in a docker config.json matching `host` ("127.0.0.1:5000"); keys may be
// written as "host", "https://host", "https://host/v1/". An entry gives `auth` (base64) or
// `username`/`password`; `identitytoken` is used as a registry token. nullopt when the file
// has no entry for the host; ENOENT when the file is missing (a caller with a default path may
// treat that as "no credentials"); EINVAL naming the file and key when it is malformed.
Result<std::optional<Credentials>> load_docker_credentials(const std::string& authfile, std::string_view host);

}  // namespace ferry::oci
