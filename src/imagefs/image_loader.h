// Opens an EROFS image (bootstrap) and its blob devices as a storage backend describes them.
//
// Knows the backend kinds, not their JSON: the daemon parses nydusd's config into
// BackendConfig. A Ferry image (a bootstrap with the Ferry header, docs/image-format.md) has
// its chunk table loaded and checked against the device table, and each compressed blob served
// through a storage::ChunkedBlobSource (decoded and verified per chunk); uncompressed blobs and
// plain EROFS images (no Ferry header) read their device files raw. Errors name the file or
// device that could not be opened, or what is inconsistent.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "erofs/erofs_image.h"

namespace ferry::imagefs {

struct BackendConfig {
  std::string type = "localfs";  // the only backend so far
  std::string blob_file;         // serves untagged devices
  std::string dir;               // serves tagged devices as DIR/TAG
};

Result<std::shared_ptr<const erofs::ErofsImage>> open_image(const std::string& bootstrap,
                                                            const BackendConfig& backend);

}  // namespace ferry::imagefs
