// Descriptor: the OCI content descriptor (mediaType, digest, size, annotations, urls,
// platform), and its JSON form. Parsing treats the JSON as untrusted: every field is type-
// checked and an Error names the field path ("layers[2].digest: ...").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"
#include "oci/digest.h"

namespace ferry::oci {

struct Platform {
  std::string architecture;
  std::string os;
  std::string variant;     // optional
  std::string os_version;  // optional
  bool operator==(const Platform&) const = default;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> urls;
  std::optional<Platform> platform;  // only meaningful in an index
  bool operator==(const Descriptor&) const = default;
};

// `where` names the JSON location for errors ("config", "layers[0]").
Result<Descriptor> descriptor_from_json(const nlohmann::json& j, const std::string& where);
nlohmann::json descriptor_to_json(const Descriptor& d);

Result<std::map<std::string, std::string>> annotations_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace ferry::oci
