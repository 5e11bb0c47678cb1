#include "snapshotter/ferry_labels.h"

#include "oci/digest.h"

namespace ferry::snapshotter {
namespace {

Result<bool> flag(const manager::Labels& labels, std::string_view key) {
  auto it = labels.find(std::string(key));
  if (it == labels.end()) return false;
  if (it->second == "true") return true;
  return Error{EINVAL, "label '" + std::string(key) + "' must be \"true\", got \"" + it->second.substr(0, 64) + "\""};
}

}  // namespace

Result<bool> is_ferry_blob(const manager::Labels& labels) {
  return flag(labels, kFerryBlob);
}
Result<bool> is_ferry_bootstrap(const manager::Labels& labels) {
  return flag(labels, kFerryBootstrap);
}

Result<oci::ImageReference> ferry_image_ref(const manager::Labels& labels) {
  for (std::string_view key : {kCriImageRef, kStargzRef}) {
    auto it = labels.find(std::string(key));
    if (it == labels.end()) continue;
    auto ref = oci::ImageReference::parse(it->second);
    if (!ref.ok()) return Error{EINVAL, "label '" + std::string(key) + "': " + ref.error().message};
    if (ref->is_layout()) {
      return Error{EINVAL, "label '" + std::string(key) + "': \"" + it->second +
                               "\" is not a registry reference (a Ferry image is read from its registry)"};
    }
    return std::move(*ref);
  }
  return Error{EINVAL, "a Ferry image layer needs its image reference: neither label '" + std::string(kCriImageRef) +
                           "' nor '" + std::string(kStargzRef) +
                           "' is given (pull with `ctr-remote images rpull`, or through CRI with "
                           "disable_snapshot_annotations = false)"};
}

Result<std::string> layer_digest(const manager::Labels& labels) {
  for (std::string_view key : {kCriLayerDigest, kStargzDigest}) {
    auto it = labels.find(std::string(key));
    if (it == labels.end()) continue;
    auto d = oci::Digest::parse(it->second);
    if (!d.ok()) return Error{EINVAL, "label '" + std::string(key) + "': " + d.error().message};
    return it->second;
  }
  return std::string();
}

manager::Labels ferry_labels_kept(const manager::Labels& labels) {
  manager::Labels kept;
  for (std::string_view key :
       {kSnapshotRef, kFerryBlob, kFerryBootstrap, kCriImageRef, kStargzRef, kCriLayerDigest, kStargzDigest}) {
    auto it = labels.find(std::string(key));
    if (it != labels.end()) kept.insert(*it);
  }
  return kept;
}

}  // namespace ferry::snapshotter
