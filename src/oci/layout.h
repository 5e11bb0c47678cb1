// OciLayout: an OCI image layout directory (oci-layout, index.json, blobs/sha256/HEX), read and
// written. Tags are index.json entries annotated org.opencontainers.image.ref.name.
//
// Reads verify: read_blob() checks the bytes against the digest (and the descriptor's size),
// verify_blob() does the same streaming for large files, so nothing unverified leaves the
// layout. Writes are atomic (temp file + rename): a crash leaves the old index.json or the new
// one, and a blob file is complete or absent. One writer at a time per layout (no locking
// between processes); readers may run concurrently with it.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "oci/descriptor.h"
#include "oci/manifest.h"

namespace ferry::oci {

inline constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";

class OciLayout {
 public:
  // An existing layout: ENOENT/EINVAL naming the directory when oci-layout is missing or not
  // {"imageLayoutVersion": "1.0.0"}.
  static Result<OciLayout> open(const std::string& dir);
  // Opens it, or creates the directory, oci-layout, blobs/sha256 and an empty index.json.
  static Result<OciLayout> create(const std::string& dir);

  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] std::string blob_path(const Digest& digest) const;
  [[nodiscard]] bool has_blob(const Digest& digest) const;

  // The whole blob, verified against d.digest and d.size; EBADMSG on a mismatch, EFBIG over
  // max_size, ENOENT when absent. The error names the layout and the digest.
  Result<std::string> read_blob(const Descriptor& d, size_t max_size) const;
  // Streams the blob file through sha256 and compares digest and size.
  Status verify_blob(const Descriptor& d) const;

  // Stores bytes as a blob (no-op if present); returns its descriptor with `media_type`.
  Result<Descriptor> write_blob(std::string_view bytes, std::string media_type);
  // Copies a file into the layout as a blob, hashing while copying.
  Result<Descriptor> import_blob_file(const std::string& path, std::string media_type);

  Result<ImageIndex> read_index() const;
  // The manifest descriptor tagged `tag`; with an empty tag, the only manifest (EINVAL if the
  // index holds several). ENOENT listing the tags present when absent.
  Result<Descriptor> resolve(std::string_view tag) const;
  // Points `tag` at `manifest` (adds the ref.name annotation; replaces an entry with that tag).
  Status set_tag(Descriptor manifest, const std::string& tag);

 private:
  explicit OciLayout(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace ferry::oci
