#include "oci/descriptor.h"

#include <nlohmann/json.hpp>

namespace ferry::oci {

namespace {

Error field_error(const std::string& where, const std::string& why) { return {EINVAL, where + ": " + why}; }

Result<std::string> string_field(const nlohmann::json& j, const char* key, const std::string& where, bool required) {
  const auto it = j.find(key);
  if (it == j.end()) {
    if (required) return field_error(where + "." + key, "missing");
    return std::string();
  }
  if (!it->is_string()) return field_error(where + "." + key, "must be a string");
  return it->get<std::string>();
}

Result<Platform> platform_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return field_error(where, "must be an object");
  Platform p;
  FERRY_ASSIGN(p.architecture, string_field(j, "architecture", where, true));
  FERRY_ASSIGN(p.os, string_field(j, "os", where, true));
  FERRY_ASSIGN(p.variant, string_field(j, "variant", where, false));
  FERRY_ASSIGN(p.os_version, string_field(j, "os.version", where, false));
  return p;
}

}  // namespace

Result<std::map<std::string, std::string>> annotations_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return field_error(where, "must be an object of strings");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return field_error(where + "." + k, "must be a string");
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

Result<Descriptor> descriptor_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return field_error(where, "must be an object");
  Descriptor d;
  FERRY_ASSIGN(d.media_type, string_field(j, "mediaType", where, true));
  if (d.media_type.empty()) return field_error(where + ".mediaType", "empty");
  FERRY_ASSIGN(const std::string digest_text, string_field(j, "digest", where, true));
  auto digest = Digest::parse(digest_text);
  if (!digest) return std::move(digest).error().context(where + ".digest");
  d.digest = std::move(digest).value();
  const auto size = j.find("size");
  if (size == j.end()) return field_error(where + ".size", "missing");
  if (!size->is_number_integer()) return field_error(where + ".size", "must be an integer");
  if (size->is_number_unsigned() ? size->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) : size->get<int64_t>() < 0) {
    return field_error(where + ".size", "must be between 0 and 2^63-1");
  }
  d.size = size->get<int64_t>();
  if (const auto a = j.find("annotations"); a != j.end() && !a->is_null()) {
    FERRY_ASSIGN(d.annotations, annotations_from_json(*a, where + ".annotations"));
  }
  if (const auto u = j.find("urls"); u != j.end() && !u->is_null()) {
    if (!u->is_array()) return field_error(where + ".urls", "must be an array of strings");
    for (const auto& url : *u) {
      if (!url.is_string()) return field_error(where + ".urls", "must be an array of strings");
      d.urls.push_back(url.get<std::string>());
    }
  }
  if (const auto p = j.find("platform"); p != j.end() && !p->is_null()) {
    FERRY_ASSIGN(d.platform, platform_from_json(*p, where + ".platform"));
  }
  return d;
}

nlohmann::json descriptor_to_json(const Descriptor& d) {
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest.str()}, {"size", d.size}};
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (!d.urls.empty()) j["urls"] = d.urls;
  if (d.platform) {
    nlohmann::json p = {{"architecture", d.platform->architecture}, {"os", d.platform->os}};
    if (!d.platform->variant.empty()) p["variant"] = d.platform->variant;
    if (!d.platform->os_version.empty()) p["os.version"] = d.platform->os_version;
    j["platform"] = std::move(p);
  }
  return j;
}

}  // namespace ferry::oci
