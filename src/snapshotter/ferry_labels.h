// The labels through which containerd tells ferry-snapshotter about a Ferry image's layers
// (`ferry-image convert` writes them as layer annotations; containerd passes the annotations
// under "containerd.io/snapshot/" as labels), and the checks made on them.
//
// A blob layer (kFerryBlob) is never downloaded: its snapshot is committed at once under the
// chain id (kSnapshotRef). The bootstrap layer (kFerryBootstrap) is unpacked by containerd; its
// committed snapshot keeps the image reference, from which a container's ferryd learns the
// registry host and repository. Pure functions; errors are EINVAL naming the label.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "manager/snapshot_record.h"
#include "oci/bootstrap_layer.h"
#include "oci/reference.h"

namespace ferry::snapshotter {

inline constexpr std::string_view kSnapshotRef = "containerd.io/snapshot.ref";
inline constexpr std::string_view kFerryBlob = oci::kFerryBlobAnnotation;
inline constexpr std::string_view kFerryBootstrap = oci::kFerryBootstrapAnnotation;
// The image reference: the CRI plugin's label first, then ctr-remote's.
inline constexpr std::string_view kCriImageRef = "containerd.io/snapshot/cri.image-ref";
inline constexpr std::string_view kStargzRef = "containerd.io/snapshot/remote/stargz.reference";
// The layer's digest (a blob layer's is the registry blob ferryd reads).
inline constexpr std::string_view kCriLayerDigest = "containerd.io/snapshot/cri.layer-digest";
inline constexpr std::string_view kStargzDigest = "containerd.io/snapshot/remote/stargz.digest";

// Whether `labels` mark a Ferry blob / bootstrap layer: the label "true"; absent false; any
// other value EINVAL.
Result<bool> is_ferry_blob(const manager::Labels& labels);
Result<bool> is_ferry_bootstrap(const manager::Labels& labels);
// The image reference a Ferry layer belongs to (a registry reference with a host); EINVAL
// naming the label when it is missing or makes no sense.
Result<oci::ImageReference> ferry_image_ref(const manager::Labels& labels);
// The layer digest of a blob layer's labels ("" when none is given); EINVAL when malformed.
Result<std::string> layer_digest(const manager::Labels& labels);
// The labels a committed Ferry layer keeps: the ref, the Ferry marks, the image reference and
// the layer digest (ctr-remote's per-image lists are dropped).
manager::Labels ferry_labels_kept(const manager::Labels& labels);

}  // namespace ferry::snapshotter
