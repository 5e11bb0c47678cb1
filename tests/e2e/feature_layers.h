// The multi-layer image the ferry-image e2e tests convert: every kind of entry an OCI layer
// carries (regular, empty, sparse and large files, hard links, symlinks, devices, fifos, long and
// non-ASCII names, owners, setuid/sticky modes, ns mtimes, xattrs) and whiteouts, opaque dirs and
// type changes across layers. Shared by ferry_image_test (umoci as the oracle) and
// containerd_convert_test (containerd's overlayfs snapshotter as the oracle).
#pragma once

#include <vector>

#include "e2e/tar_writer.h"

namespace ferry::e2e {

// Lowest first: layers 1-3 add data, layer 4 only whiteouts and a directory (no blob).
std::vector<std::vector<TarEntry>> feature_layers();

}  // namespace ferry::e2e
