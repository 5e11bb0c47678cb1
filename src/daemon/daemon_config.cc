#include "daemon/daemon_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace ferry::daemon {

Result<imagefs::BackendConfig> parse_backend_config(const std::string& json_text) {
  nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error{EINVAL, "config is not valid JSON"};
  if (!doc.is_object()) return Error{EINVAL, "config must be a JSON object"};
  auto device = doc.find("device");
  if (device == doc.end() || !device->is_object()) return Error{EINVAL, "config has no \"device\" object"};
  auto backend = device->find("backend");
  if (backend == device->end() || !backend->is_object()) {
    return Error{EINVAL, "config has no \"device.backend\" object"};
  }
  imagefs::BackendConfig out;
  auto type = backend->find("type");
  if (type == backend->end() || !type->is_string())
    return Error{EINVAL, "config has no \"device.backend.type\""};
  out.type = type->get<std::string>();
  if (out.type != "localfs") {
    return Error{EINVAL,
                 "unknown backend type '" + out.type + "' in device.backend.type (supported: localfs)"};
  }
  auto cfg = backend->find("config");
  if (cfg != backend->end()) {
    if (!cfg->is_object()) return Error{EINVAL, "device.backend.config must be an object"};
    for (const char* key : {"blob_file", "dir"}) {
      auto it = cfg->find(key);
      if (it == cfg->end()) continue;
      if (!it->is_string())
        return Error{EINVAL, std::string("device.backend.config.") + key + " must be a string"};
      (std::string(key) == "dir" ? out.dir : out.blob_file) = it->get<std::string>();
    }
  }
  return out;
}

Result<imagefs::BackendConfig> load_backend_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return errno_error(errno != 0 ? errno : ENOENT, "cannot read config '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  auto cfg = parse_backend_config(ss.str());
  if (!cfg.ok()) return std::move(cfg).error().context("config '" + path + "'");
  return cfg;
}

}  // namespace ferry::daemon
