#include "daemon/daemon_config.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace ferry::daemon {
namespace {

using nlohmann::json;

// Errors name the key ("device.backend.config.host"); never a value (some are secrets).
Error bad(const std::string& key, const std::string& what) { return Error{EINVAL, "config key " + key + " " + what}; }

// A value named in an error (a backend or cache type): quoted when it is a short plain name,
// left out otherwise (a control character would break the one-line error).
std::string named(const std::string& value) {
  const bool plain = value.size() <= 32 && std::all_of(value.begin(), value.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                              c == '-' || c == '_' || c == '.';
                     });
  return plain ? " '" + value + "'" : std::string();
}

// The object at `key` of `parent` (nullptr when absent); an error when it is not an object.
Result<const json*> object_at(const json& parent, const char* key, const std::string& path) {
  auto it = parent.find(key);
  if (it == parent.end()) return static_cast<const json*>(nullptr);
  if (!it->is_object()) return bad(path, "must be an object");
  return &*it;
}

Status get_string(const json& obj, const char* key, const std::string& prefix, std::string& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return ok_status();
  if (!it->is_string()) return bad(prefix + key, "must be a string");
  out = it->get<std::string>();
  return ok_status();
}

Status get_bool(const json& obj, const char* key, const std::string& prefix, bool& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return ok_status();
  if (!it->is_boolean()) return bad(prefix + key, "must be true or false");
  out = it->get<bool>();
  return ok_status();
}

// A non-negative integer no larger than `max`.
Status get_uint(const json& obj, const char* key, const std::string& prefix, uint64_t max, uint64_t& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return ok_status();
  if (!it->is_number_integer() || (it->is_number_integer() && !it->is_number_unsigned() && it->get<int64_t>() < 0))
    return bad(prefix + key, "must be a non-negative integer");
  const auto v = it->get<uint64_t>();
  if (v > max) return bad(prefix + key, "must be at most " + std::to_string(max));
  out = v;
  return ok_status();
}

// Seconds (nydusd's unit) as milliseconds; 0 keeps the default.
Status get_seconds(const json& obj, const char* key, const std::string& prefix, std::chrono::milliseconds& out) {
  uint64_t s = 0;
  FERRY_TRY(get_uint(obj, key, prefix, 24 * 3600, s));
  if (s > 0) out = std::chrono::milliseconds(s * 1000);
  return ok_status();
}

Status parse_registry(const json& cfg, remote::RegistryConfig& r) {
  const std::string p = "device.backend.config.";
  for (auto [key, field] : {std::pair{"scheme", &r.scheme}, std::pair{"host", &r.host}, std::pair{"repo", &r.repo},
                            std::pair{"auth", &r.auth}, std::pair{"registry_token", &r.registry_token}}) {
    FERRY_TRY(get_string(cfg, key, p, *field));
  }
  if (!r.auth.empty() && !base64_shaped(r.auth))
    return bad(p + "auth", "must be the base64 of \"user:password\"");
  if (r.scheme.empty()) r.scheme = "https";
  if (r.scheme != "https" && r.scheme != "http") return bad(p + "scheme", "must be \"https\" or \"http\"");
  if (r.host.empty()) return bad(p + "host", "is missing (the registry's HOST[:PORT])");
  if (r.host.find_first_of("/ \t\r\n@") != std::string::npos) return bad(p + "host", "must be HOST[:PORT]");
  if (r.repo.empty()) return bad(p + "repo", "is missing (the repository, like ns/name)");
  if (r.repo.front() == '/' || r.repo.find_first_of(" \t\r\n?#") != std::string::npos)
    return bad(p + "repo", "must be a repository name like ns/name");
  FERRY_TRY(get_bool(cfg, "skip_verify", p, r.skip_verify));
  if (auto it = cfg.find("ca_cert_files"); it != cfg.end()) {
    if (!it->is_array()) return bad(p + "ca_cert_files", "must be an array of file names");
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string key = p + "ca_cert_files[" + std::to_string(i) + "]";
      if (!(*it)[i].is_string()) return bad(key, "must be a string");
      std::string file = (*it)[i].get<std::string>();
      if (::access(file.c_str(), R_OK) != 0) {
        return errno_error("config key " + key + ": cannot read CA file '" + file + "'");
      }
      r.ca_cert_files.push_back(std::move(file));
    }
  }
  FERRY_TRY(get_seconds(cfg, "timeout", p, r.timeout));
  FERRY_TRY(get_seconds(cfg, "connect_timeout", p, r.connect_timeout));
  uint64_t retries = static_cast<uint64_t>(r.retry_limit);
  FERRY_TRY(get_uint(cfg, "retry_limit", p, 10, retries));
  r.retry_limit = static_cast<int>(retries);
  return ok_status();
}

Status parse_cache(const json& device, imagefs::BlobCacheConfig& cache) {
  FERRY_ASSIGN(const json* c, object_at(device, "cache", "device.cache"));
  if (c == nullptr) return ok_status();
  FERRY_TRY(get_string(*c, "type", "device.cache.", cache.type));
  if (cache.type.empty()) return ok_status();  // nydus-snapshotter may write an empty cache
  if (cache.type != "blobcache") {
    return bad("device.cache.type", "names an unknown cache type" + named(cache.type) + " (supported: blobcache)");
  }
  FERRY_ASSIGN(const json* cfg, object_at(*c, "config", "device.cache.config"));
  if (cfg != nullptr) FERRY_TRY(get_string(*cfg, "work_dir", "device.cache.config.", cache.work_dir));
  if (cache.work_dir.empty()) return bad("device.cache.config.work_dir", "is missing (the cache's directory)");
  return ok_status();
}

Status parse_prefetch(const json& doc, imagefs::PrefetchConfig& prefetch) {
  FERRY_ASSIGN(const json* p, object_at(doc, "fs_prefetch", "fs_prefetch"));
  if (p == nullptr) return ok_status();
  FERRY_TRY(get_bool(*p, "enable", "fs_prefetch.", prefetch.enable));
  uint64_t threads = prefetch.threads_count;
  FERRY_TRY(get_uint(*p, "threads_count", "fs_prefetch.", 64, threads));
  prefetch.threads_count = threads == 0 ? 1 : static_cast<unsigned>(threads);
  FERRY_TRY(get_uint(*p, "bandwidth_rate", "fs_prefetch.", UINT64_MAX, prefetch.bandwidth_rate));
  return ok_status();
}

}  // namespace

bool base64_shaped(std::string_view s) {
  if (s.size() % 4 != 0) return false;
  size_t pad = 0;
  for (const char c : s) {
    const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (c == '=') {
      ++pad;
    } else if (pad != 0 || !(alnum || c == '+' || c == '/')) {
      return false;
    }
  }
  return pad <= 2;
}

Result<imagefs::BackendConfig> parse_backend_config(const std::string& json_text) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
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
  if (out.type != "localfs" && out.type != "registry") {
    return Error{EINVAL, "unknown backend type" + named(out.type) +
                             " in device.backend.type (supported: localfs, registry)"};
  }
  FERRY_ASSIGN(const json* cfg, object_at(*backend, "config", "device.backend.config"));
  if (out.type == "localfs") {
    if (cfg != nullptr) {
      FERRY_TRY(get_string(*cfg, "blob_file", "device.backend.config.", out.blob_file));
      FERRY_TRY(get_string(*cfg, "dir", "device.backend.config.", out.dir));
    }
  } else {
    if (cfg == nullptr) return bad("device.backend.config", "is missing (registry host and repo)");
    FERRY_TRY(parse_registry(*cfg, out.registry));
  }
  FERRY_TRY(parse_cache(*device, out.cache));
  FERRY_TRY(parse_prefetch(doc, out.prefetch));
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
