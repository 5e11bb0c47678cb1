// Opens an EROFS image (bootstrap) and its blob devices as a storage backend describes them.
//
// Knows the backend kinds, not their JSON: the daemon parses nydusd's config into
// BackendConfig. Backends: `localfs` (blob files on disk) and `registry` (each blob fetched
// lazily, chunk by chunk, with Range requests: remote/registry_fetcher.h; a Ferry image only,
// since only its chunk table says where chunks are). A Ferry image (a bootstrap with the Ferry header, docs/image-format.md) has
// its chunk table loaded and checked against the device table, and each compressed blob served
// through a storage::ChunkedBlobSource (decoded and verified per chunk); uncompressed blobs and
// plain EROFS images (no Ferry header) read their device files raw. Errors name the file or
// device that could not be opened, or what is inconsistent.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "erofs/erofs_image.h"
#include "remote/registry_config.h"

namespace ferry::imagefs {

// nydusd's `device.cache` (type "blobcache"): a persistent cache of verified chunks.
struct BlobCacheConfig {
  std::string type;      // "" (none) or "blobcache"
  std::string work_dir;  // where the cache files are
};

// nydusd's `fs_prefetch`: background fetch of the image's blobs.
struct PrefetchConfig {
  bool enable = false;
  unsigned threads_count = 1;
  uint64_t bandwidth_rate = 0;  // bytes per second, 0 = unlimited
};

struct BackendConfig {
  std::string type = "localfs";  // "localfs" or "registry"
  std::string blob_file;         // localfs: serves untagged devices
  std::string dir;               // localfs: serves tagged devices as DIR/TAG
  remote::RegistryConfig registry;  // registry: where the blobs are (holds secrets)
  BlobCacheConfig cache;
  PrefetchConfig prefetch;
};

Result<std::shared_ptr<const erofs::ErofsImage>> open_image(const std::string& bootstrap,
                                                            const BackendConfig& backend);

}  // namespace ferry::imagefs
