#include "oci/image_config.h"

#include <nlohmann/json.hpp>

#include "oci/json_limits.h"

namespace ferry::oci {

namespace {
Error invalid(const std::string& why) { return {EINVAL, "invalid image config: " + why}; }
}  // namespace

Result<ImageConfig> ImageConfig::parse(std::string bytes) {
  if (bytes.size() > kMaxConfigSize) return invalid("larger than " + std::to_string(kMaxConfigSize) + " bytes");
  if (json_too_deep(bytes)) return invalid("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  const auto j = nlohmann::ordered_json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid("not valid JSON");
  if (!j.is_object()) return invalid("not a JSON object");
  ImageConfig c;
  for (const auto* key : {"os", "architecture"}) {
    const auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_string()) return invalid(std::string(key) + ": must be a string");
    (std::string_view(key) == "os" ? c.os_ : c.architecture_) = it->get<std::string>();
  }
  if (const auto rootfs = j.find("rootfs"); rootfs != j.end()) {
    if (!rootfs->is_object()) return invalid("rootfs: must be an object");
    if (const auto type = rootfs->find("type"); type != rootfs->end() && (!type->is_string() || *type != "layers")) {
      return invalid("rootfs.type: must be \"layers\"");
    }
    if (const auto ids = rootfs->find("diff_ids"); ids != rootfs->end() && !ids->is_null()) {
      if (!ids->is_array()) return invalid("rootfs.diff_ids: must be an array");
      for (size_t i = 0; i < ids->size(); ++i) {
        const auto& id = (*ids)[i];
        const std::string where = "rootfs.diff_ids[" + std::to_string(i) + "]";
        if (!id.is_string()) return invalid(where + ": must be a string");
        auto digest = Digest::parse(id.get<std::string>());
        if (!digest) return invalid(where + ": " + digest.error().message);
        c.diff_ids_.push_back(std::move(digest).value());
      }
    }
  }
  c.bytes_ = std::move(bytes);
  return c;
}

void ImageConfig::set_diff_ids(const std::vector<Digest>& diff_ids) {
  auto j = nlohmann::ordered_json::parse(bytes_);  // valid: checked by parse()
  auto& rootfs = j["rootfs"];
  rootfs["type"] = "layers";
  auto& ids = rootfs["diff_ids"];
  ids = nlohmann::ordered_json::array();
  for (const auto& d : diff_ids) ids.push_back(d.str());
  bytes_ = j.dump();
  diff_ids_ = diff_ids;
}

Descriptor ImageConfig::descriptor(std::string media_type) const {
  Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = digest();
  d.size = static_cast<int64_t>(bytes_.size());
  return d;
}

}  // namespace ferry::oci
