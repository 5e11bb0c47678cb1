// ImageConfig: an image's config blob, kept as the bytes it came as (so its digest is the
// source's) until something is changed; only rootfs.diff_ids is adjustable (what a conversion
// changes). Other fields (entrypoint, env, cmd, history) are carried through untouched, in
// their original order.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "oci/descriptor.h"
#include "oci/digest.h"

namespace ferry::oci {

inline constexpr size_t kMaxConfigSize = 16 << 20;

class ImageConfig {
 public:
  // Checks it is a JSON object whose rootfs (if present) is {"type": "layers", "diff_ids": [digests]}
  // and whose os/architecture (if present) are strings. EINVAL naming the field otherwise.
  static Result<ImageConfig> parse(std::string bytes);

  [[nodiscard]] const std::string& bytes() const { return bytes_; }
  [[nodiscard]] Digest digest() const { return Digest::of(bytes_); }
  [[nodiscard]] const std::vector<Digest>& diff_ids() const { return diff_ids_; }
  [[nodiscard]] const std::string& os() const { return os_; }
  [[nodiscard]] const std::string& architecture() const { return architecture_; }

  // Replaces rootfs.diff_ids (and sets rootfs.type = "layers"), re-serialising with the
  // original key order. The bytes (and so the digest) change.
  void set_diff_ids(const std::vector<Digest>& diff_ids);

  // A descriptor of these bytes with the given media type.
  [[nodiscard]] Descriptor descriptor(std::string media_type) const;

 private:
  std::string bytes_;
  std::vector<Digest> diff_ids_;
  std::string os_;
  std::string architecture_;
};

}  // namespace ferry::oci
