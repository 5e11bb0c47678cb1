#include "oci/credentials.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "oci/base64.h"
#include "oci/file_util.h"

namespace ferry::oci {

namespace {

// "https://host:5000/v1/" -> "host:5000"; docker.io's historical names fold to docker.io.
std::string normalize_host(std::string_view key) {
  if (const size_t scheme = key.find("://"); scheme != std::string_view::npos) key = key.substr(scheme + 3);
  key = key.substr(0, key.find('/'));
  if (key == "index.docker.io" || key == "registry-1.docker.io") return "docker.io";
  return std::string(key);
}

}  // namespace

Result<Credentials> Credentials::from_user_pass(std::string_view user_pass) {
  const size_t colon = user_pass.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Error{EINVAL, "credentials must be USER:PASS (with a non-empty user)"};
  }
  Credentials c;
  c.username = std::string(user_pass.substr(0, colon));
  c.password = std::string(user_pass.substr(colon + 1));
  return c;
}

Result<Credentials> Credentials::from_base64(std::string_view auth) {
  const auto decoded = base64_decode(auth);
  if (!decoded) return Error{EINVAL, "auth is not valid base64"};
  auto c = from_user_pass(*decoded);
  if (!c) return Error{EINVAL, "auth does not decode to USER:PASS"};
  return c;
}

std::string default_authfile() {
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir != nullptr && *dir != '\0') {
    return std::string(dir) + "/config.json";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/root") + "/.docker/config.json";
}

Result<std::optional<Credentials>> load_docker_credentials(const std::string& authfile, std::string_view host) {
  auto bytes = read_file_bounded(authfile, 4 << 20);
  if (!bytes) return std::move(bytes).error().context("reading the auth file");
  const auto j = nlohmann::json::parse(*bytes, nullptr, false);
  const auto bad = [&](const std::string& why) { return Error{EINVAL, authfile + ": " + why}; };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  const auto auths = j.find("auths");
  if (auths == j.end() || auths->is_null()) return std::optional<Credentials>{};
  if (!auths->is_object()) return bad("auths: must be an object");
  const std::string wanted = normalize_host(host);
  for (const auto& item : auths->items()) {
    const std::string& key = item.key();
    const nlohmann::json& entry = item.value();
    if (normalize_host(key) != wanted) continue;
    const std::string where = "auths[\"" + key + "\"]";
    if (!entry.is_object()) return bad(where + ": must be an object");
    const auto str = [&](const char* name) -> Result<std::string> {
      const auto it = entry.find(name);
      if (it == entry.end() || it->is_null()) return std::string();
      if (!it->is_string()) return bad(where + "." + name + ": must be a string");
      return it->get<std::string>();
    };
    FERRY_ASSIGN(const std::string auth, str("auth"));
    FERRY_ASSIGN(const std::string username, str("username"));
    FERRY_ASSIGN(const std::string password, str("password"));
    FERRY_ASSIGN(const std::string identity_token, str("identitytoken"));
    Credentials c;
    if (!auth.empty()) {
      auto decoded = Credentials::from_base64(auth);
      if (!decoded) return bad(where + ".auth: " + decoded.error().message);
      c = std::move(decoded).value();
    } else if (!username.empty()) {
      c.username = username;
      c.password = password;
    }
    c.registry_token = identity_token;
    if (c.empty()) return bad(where + ": has neither auth nor username/password");
    return std::optional<Credentials>(std::move(c));
  }
  return std::optional<Credentials>{};
}

}  // namespace ferry::oci
