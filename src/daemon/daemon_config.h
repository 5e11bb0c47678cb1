// Parses the nydusd configuration JSON that ferryd accepts (the v1 shape nydus-snapshotter
// writes): {"device": {"backend": {"type": "localfs", "config": {"blob_file": P, "dir": D}}}},
// or "type": "registry" with "config": {scheme, host, repo, auth, registry_token, skip_verify,
// ca_cert_files, timeout, connect_timeout, retry_limit}; "device.cache" {"type": "blobcache",
// "config": {"work_dir"}}; "fs_prefetch" {enable, threads_count, bandwidth_rate}. docs/api.md
// lists them. Unknown keys are ignored as nydusd does; a malformed document, a missing backend,
// an unknown backend or cache type, a missing registry host or repo, a value of the wrong JSON
// type or an unreadable CA file is a one-line EINVAL/errno error naming the key, and never a
// value (auth and registry_token are secrets).
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "imagefs/image_loader.h"

namespace ferry::daemon {

Result<imagefs::BackendConfig> parse_backend_config(const std::string& json_text);
// Whether `s` has the shape of standard padded base64 (what `auth` must be; the registry module
// decodes it).
bool base64_shaped(std::string_view s);
Result<imagefs::BackendConfig> load_backend_config_file(const std::string& path);

}  // namespace ferry::daemon
