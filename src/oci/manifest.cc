#include "oci/manifest.h"

#include <nlohmann/json.hpp>

#include "oci/json_limits.h"
#include "oci/media_types.h"

namespace ferry::oci {

namespace {

Error invalid(const std::string& why) { return {EINVAL, "invalid manifest: " + why}; }

Result<std::vector<Descriptor>> descriptor_list(const nlohmann::json& j, const char* key, bool required) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return invalid(std::string(key) + ": missing");
    return std::vector<Descriptor>{};
  }
  if (!it->is_array()) return invalid(std::string(key) + ": must be an array");
  std::vector<Descriptor> out;
  out.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    auto d = descriptor_from_json((*it)[i], std::string(key) + "[" + std::to_string(i) + "]");
    if (!d) return invalid(d.error().message);
    out.push_back(std::move(d).value());
  }
  return out;
}

Result<std::map<std::string, std::string>> top_annotations(const nlohmann::json& j) {
  const auto it = j.find("annotations");
  if (it == j.end() || it->is_null()) return std::map<std::string, std::string>{};
  auto a = annotations_from_json(*it, "annotations");
  if (!a) return invalid(a.error().message);
  return a;
}

// The manifest kind, from the JSON's mediaType, the Content-Type, or the shape.
Result<std::string> kind_of(const nlohmann::json& j, std::string_view content_type) {
  std::string declared;
  if (const auto it = j.find("mediaType"); it != j.end()) {
    if (!it->is_string()) return invalid("mediaType: must be a string");
    declared = it->get<std::string>();
  }
  // "application/json; charset=..." and the like say nothing about the kind.
  const std::string_view ct = content_type.substr(0, content_type.find(';'));
  const bool ct_is_kind = media_type::is_manifest_kind(ct);
  if (!declared.empty()) {
    if (!media_type::is_manifest_kind(declared)) {
      if (declared.find("manifest.v1+") != std::string::npos && declared.find("docker") != std::string::npos) {
        return invalid("Docker schema 1 manifests (" + declared + ") are not supported");
      }
      return invalid("mediaType '" + declared + "' is not an image manifest or index");
    }
    if (ct_is_kind && ct != declared) {
      return invalid("mediaType '" + declared + "' contradicts the Content-Type '" + std::string(ct) + "'");
    }
    return declared;
  }
  if (ct_is_kind) return std::string(ct);
  if (j.contains("manifests")) return std::string(media_type::kOciIndex);
  if (j.contains("config") || j.contains("layers")) return std::string(media_type::kOciManifest);
  return invalid("neither a mediaType nor config/layers/manifests: not an image manifest");
}

}  // namespace

Result<AnyManifest> parse_manifest(std::string_view bytes, std::string_view content_type) {
  if (bytes.size() > kMaxManifestSize) {
    return invalid(std::to_string(bytes.size()) + " bytes, more than the limit of " + std::to_string(kMaxManifestSize));
  }
  if (json_too_deep(bytes)) return invalid("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid("not valid JSON");
  if (!j.is_object()) return invalid("not a JSON object");
  const auto version = j.find("schemaVersion");
  if (version == j.end()) return invalid("schemaVersion: missing");
  if (!version->is_number_integer()) return invalid("schemaVersion: must be an integer");
  if (version->get<int64_t>() == 1) return invalid("Docker schema 1 manifests are not supported");
  if (version->get<int64_t>() != 2) return invalid("schemaVersion: must be 2");
  FERRY_ASSIGN(std::string kind, kind_of(j, content_type));
  if (media_type::is_index(kind)) {
    ImageIndex index;
    index.media_type = std::move(kind);
    FERRY_ASSIGN(index.manifests, descriptor_list(j, "manifests", true));
    FERRY_ASSIGN(index.annotations, top_annotations(j));
    return AnyManifest(std::move(index));
  }
  ImageManifest m;
  m.media_type = std::move(kind);
  const auto config = j.find("config");
  if (config == j.end()) return invalid("config: missing");
  auto d = descriptor_from_json(*config, "config");
  if (!d) return invalid(d.error().message);
  m.config = std::move(d).value();
  FERRY_ASSIGN(m.layers, descriptor_list(j, "layers", true));
  FERRY_ASSIGN(m.annotations, top_annotations(j));
  return AnyManifest(std::move(m));
}

std::string serialize(const ImageManifest& m) {
  nlohmann::json j = {{"schemaVersion", 2}, {"mediaType", m.media_type}, {"config", descriptor_to_json(m.config)}};
  j["layers"] = nlohmann::json::array();
  for (const auto& l : m.layers) j["layers"].push_back(descriptor_to_json(l));
  if (!m.annotations.empty()) j["annotations"] = m.annotations;
  return j.dump();
}

std::string serialize(const ImageIndex& index) {
  nlohmann::json j = {{"schemaVersion", 2}, {"mediaType", index.media_type}};
  j["manifests"] = nlohmann::json::array();
  for (const auto& d : index.manifests) j["manifests"].push_back(descriptor_to_json(d));
  if (!index.annotations.empty()) j["annotations"] = index.annotations;
  return j.dump();
}

Result<Descriptor> select_platform(const ImageIndex& index, std::string_view os, std::string_view architecture) {
  std::string seen;
  for (const auto& d : index.manifests) {
    if (!d.platform) continue;
    if (d.platform->os == os && d.platform->architecture == architecture) return d;
    seen += (seen.empty() ? "" : ", ") + d.platform->os + "/" + d.platform->architecture;
    if (!d.platform->variant.empty()) seen += "/" + d.platform->variant;
  }
  return Error{ENOENT, "the index has no manifest for " + std::string(os) + "/" + std::string(architecture) +
                           " (it has: " + (seen.empty() ? "none with a platform" : seen) + ")"};
}

}  // namespace ferry::oci
