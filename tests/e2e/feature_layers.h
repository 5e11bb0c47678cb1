// The layers of the main e2e image, lowest first: every kind of entry OCI layers carry
// (regular, empty, sparse and large files, directories, symlinks, hard links, devices, fifos,
// long and non-ASCII names, owners, setuid/sgid/sticky, ns mtimes, xattrs), whiteouts and
// opaque directories across layers, a directory replaced by a file and back, duplicated chunks,
// and a last layer that adds no data. Shared by ferry-image's tests (umoci as the oracle), ferryd's,
// and containerd_convert_test (containerd's overlayfs snapshotter as the oracle).
#pragma once

#include <string>
#include <vector>

#include "e2e/tar_writer.h"

namespace ferry::e2e {

std::vector<std::vector<TarEntry>> feature_layers();

// Writes `bytes` to `path` (truncating); throws std::runtime_error on failure.
void write_bytes(const std::string& path, const std::string& bytes);

}  // namespace ferry::e2e
