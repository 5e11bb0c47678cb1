// Opens an EROFS image (bootstrap) and its blob devices as a storage backend describes them.
//
// Knows the backend kinds, not their JSON: the daemon parses nydusd's config into
// BackendConfig. Errors name the file or device that could not be opened.
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
