// Parses the nydusd configuration JSON that ferryd accepts (the v1 shape nydus-snapshotter
// writes): {"device": {"backend": {"type": "localfs", "config": {"blob_file": P, "dir": D}}}}.
// Unknown top-level keys are ignored as nydusd does; a malformed document, a missing backend or
// an unknown backend type is an error naming the problem.
#pragma once

#include <string>

#include "common/result.h"
#include "imagefs/image_loader.h"

namespace ferry::daemon {

Result<imagefs::BackendConfig> parse_backend_config(const std::string& json_text);
Result<imagefs::BackendConfig> load_backend_config_file(const std::string& path);

}  // namespace ferry::daemon
