// FerryMounter: what the snapshotter needs to serve a Ferry image's files, a ferryd mounted at a
// directory. ManagerFerryMounter (manager_mounter.h) is the real one: the manager's own mount
// path, so that records, failover, hot standby and upgrade apply as to the system API's mounts.
//
// mount() returns once the daemon serves (or an error, leaving nothing mounted); umount() stops
// or detaches its daemon. Thread-safety: implementations may be called from any thread; the
// snapshotter serialises calls for one mountpoint.
#pragma once

#include <string>

#include "common/result.h"
#include "oci/reference.h"

namespace ferry::snapshotter {

struct FerryImage {
  std::string mountpoint;   // <snapshots>/<bootstrap snapshot id>/mnt (exists)
  std::string bootstrap;    // <snapshots>/<bootstrap snapshot id>/fs/image/image.boot
  oci::ImageReference ref;  // the registry and repository the blobs are read from
  std::string blob_digest;  // one blob layer of the image ("" when unknown): probed before mounting
};

class FerryMounter {
 public:
  virtual ~FerryMounter() = default;
  virtual Status mount(const FerryImage& image) = 0;
  virtual Status umount(const std::string& mountpoint) = 0;
  [[nodiscard]] virtual bool mounted(const std::string& mountpoint) const = 0;
};

}  // namespace ferry::snapshotter
