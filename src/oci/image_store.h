// ImageStore: where images are read from and written to, a registry repository or an OCI
// image layout behind one interface, so that `ferry-image convert` (and tests) move images
// between them without caring which is which. resolve_image() reads an image the way convert
// needs it: the manifest (an index resolved to linux/amd64) and the config.
//
// Everything read is verified against its digest (the registry client and OciLayout do it).
// Not thread-safe as a whole (a RegistryStore may be used from many threads; a LayoutStore
// writes index.json and so wants one writer).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "oci/credentials.h"
#include "oci/http_transport.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/reference.h"
#include "oci/registry_client.h"

namespace ferry::oci {

class ImageStore {
 public:
  virtual ~ImageStore() = default;
  // "registry H, repository R" or "layout DIR": for messages.
  [[nodiscard]] virtual std::string where() const = 0;

  // `reference`: a tag, a digest ("sha256:..."), or empty (a layout's only image).
  virtual Result<FetchedManifest> get_manifest(const std::string& reference) = 0;
  virtual Result<std::string> read_blob(const Descriptor& d, size_t max_size) = 0;
  virtual Status read_blob_to_file(const Descriptor& d, const std::string& path) = 0;
  // true when stored, false when it was there already.
  virtual Result<bool> write_blob(const Descriptor& d, std::string_view bytes) = 0;
  virtual Result<bool> write_blob_file(const Descriptor& d, const std::string& path) = 0;
  // Stores the manifest and points `tag` at it.
  virtual Result<Digest> put_manifest(const std::string& tag, std::string_view media_type, std::string_view bytes) = 0;
};

struct StoreOptions {
  bool plain_http = false;
  TlsOptions tls;
  // Credentials for a registry: explicit ones win; else the authfile's entry for the host;
  // else anonymous. authfile empty = default_authfile(), whose absence is not an error.
  std::optional<Credentials> credentials;
  std::string authfile;
  RegistryOptions registry;  // timeouts and retries (host, plain_http, tls, credentials are set from the above)
};

// A store for the reference's registry repository or layout directory. A layout is created
// when `create_layout` (a target); a missing one is an error otherwise.
Result<std::unique_ptr<ImageStore>> open_store(const ImageReference& ref, const StoreOptions& options,
                                               bool create_layout);

struct ResolvedImage {
  Digest manifest_digest;  // of the image manifest (not of the index, when there was one)
  ImageManifest manifest;
  ImageConfig config;
};

// Reads ref's manifest; an index is resolved to linux/amd64; then the config. A manifest whose
// config is not an image config, or that has no layers, is EINVAL naming the store.
Result<ResolvedImage> resolve_image(ImageStore& store, const ImageReference& ref);

}  // namespace ferry::oci
