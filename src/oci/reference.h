// ImageReference: where an image is, as the user typed it.
//
//   HOST[:PORT]/REPO[:TAG][@sha256:HEX]   a registry (HOST may be a name, IPv4, or [IPv6])
//   oci:DIR[:TAG]                          an OCI image layout directory
//
// The registry form needs an explicit host (a first component with '.', ':' or "localhost"):
// Docker Hub's short names ("busybox") are refused with a message saying so, rather than
// guessed. Repository components follow the distribution spec's grammar (lowercase); tags are
// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. A registry reference with neither tag nor digest means
// tag "latest". A value type; parse() is the only constructor from text.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "oci/digest.h"

namespace ferry::oci {

struct ImageReference {
  enum class Kind { kRegistry, kLayout };

  Kind kind = Kind::kRegistry;
  std::string host;        // kRegistry: "registry.example:5000", "[::1]:5000"
  std::string repository;  // kRegistry: "ns/name"
  std::string tag;         // optional for kLayout; "latest" if neither tag nor digest (kRegistry)
  Digest digest;           // optional; wins over the tag when both are given
  std::string layout_dir;  // kLayout

  // EINVAL with a message naming the reference and what is wrong with it.
  static Result<ImageReference> parse(std::string_view text);

  [[nodiscard]] bool is_layout() const { return kind == Kind::kLayout; }
  // What to put after /manifests/: the digest if any, else the tag.
  [[nodiscard]] std::string manifest_reference() const;
  // Back to text, in the accepted syntax.
  [[nodiscard]] std::string str() const;
};

// Validators shared with the layout and the registry client.
bool is_valid_repository(std::string_view repo);
bool is_valid_tag(std::string_view tag);

}  // namespace ferry::oci
