// libFuzzer target for ferryd's config parser (src/daemon/daemon_config.h): the config JSON comes
// from a file or the mount API, and a bad one must be an error, never a crash.
//
// Properties checked beyond "no crash, no sanitizer report":
//   - an error is one line (no newline in its message);
//   - an error never depends on the text of `auth` or `registry_token` (secrets): the input with
//     each replaced by another string of the same length and validity parses the same way, to
//     the same message;
//   - a parsed registry config has a host, a repo and an https/http scheme.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "daemon/daemon_config.h"

namespace {

using nlohmann::json;

void check(bool condition) {
  if (!condition) std::abort();
}

// Another secret of the same length that the parser accepts or refuses alike.
std::string stand_in(const std::string& s) {
  if (!ferry::daemon::base64_shaped(s)) return std::string(s.size(), '%');
  size_t pad = 0;
  while (pad < s.size() && s[s.size() - 1 - pad] == '=') ++pad;
  return std::string(s.size() - pad, 'Q') + std::string(pad, '=');
}

// The outcome of a parse, as text: "ok" or the error message.
std::string outcome(const std::string& text) {
  auto parsed = ferry::daemon::parse_backend_config(text);
  return parsed.ok() ? std::string("ok") : "error: " + parsed.error().message;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = ferry::daemon::parse_backend_config(text);
  if (parsed.ok()) {
    if (parsed->type == "registry") {
      check(!parsed->registry.host.empty() && !parsed->registry.repo.empty());
      check(parsed->registry.scheme == "https" || parsed->registry.scheme == "http");
    } else {
      check(parsed->type == "localfs");
    }
  } else {
    check(parsed.error().message.find('\n') == std::string::npos);
  }

  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  const json::json_pointer config("/device/backend/config");
  if (!doc.contains(config) || !doc.at(config).is_object()) return 0;
  json other = doc;
  bool replaced = false;
  for (const char* key : {"auth", "registry_token"}) {
    auto it = other.at(config).find(key);
    if (it == other.at(config).end() || !it->is_string()) continue;
    *it = stand_in(it->get<std::string>());
    replaced = true;
  }
  if (replaced) check(outcome(doc.dump()) == outcome(other.dump()));
  return 0;
}
