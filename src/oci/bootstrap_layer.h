// The tar a Ferry image's bootstrap travels in as an image layer: "image/" and
// "image/image.boot" (the layout nydus-snapshotter's bootstrap layer has, and what containerd
// unpacks into the bootstrap layer's snapshot). Written as plain ustar with fixed metadata
// (root-owned, mode 0644/0755, mtime 0), so the same bootstrap always gives the same tar and
// the same diff_id. The caller compresses it (gzip) for the layer blob.
//
// Also the annotations and media types a converted manifest carries.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "oci/digest.h"

namespace ferry::oci {

inline constexpr std::string_view kBootstrapPathInLayer = "image/image.boot";
inline constexpr std::string_view kFerryBlobAnnotation = "containerd.io/snapshot/ferry-blob";
inline constexpr std::string_view kFerryBootstrapAnnotation = "containerd.io/snapshot/ferry-bootstrap";
// Blob layers: under "application/vnd.oci.image.layer." as containerd 1.6 requires of layers.
inline constexpr std::string_view kFerryBlobMediaType = "application/vnd.oci.image.layer.ferry.blob.v1";

// Writes the tar to `tar_path` (atomically); returns its sha256 (the layer's diff_id).
// EFBIG for a bootstrap over 8 GiB (ustar's size field).
Result<Digest> write_bootstrap_tar(const std::string& bootstrap_path, const std::string& tar_path);

}  // namespace ferry::oci
