// Image manifests and indexes, OCI and Docker schema 2: parse (untrusted bytes), produce,
// and pick the linux/amd64 entry of an index.
//
// parse_manifest() accepts at most kMaxManifestSize bytes (the distribution spec's limit) of
// JSON with schemaVersion 2; the kind comes from the JSON's mediaType, else from the HTTP
// Content-Type, else from its shape (OCI allows omitting mediaType). Every error is EINVAL and
// names the field. Docker schema 1 is refused by name. serialize() writes compact JSON with
// sorted keys, so the same manifest always has the same digest.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"
#include "oci/descriptor.h"

namespace ferry::oci {

inline constexpr size_t kMaxManifestSize = 4 << 20;

struct ImageManifest {
  std::string media_type;  // media_type::kOciManifest or kDockerManifest
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
};

struct ImageIndex {
  std::string media_type;  // media_type::kOciIndex or kDockerManifestList
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;
};

using AnyManifest = std::variant<ImageManifest, ImageIndex>;

// `content_type` is the HTTP Content-Type (or a descriptor's mediaType); empty if unknown.
Result<AnyManifest> parse_manifest(std::string_view bytes, std::string_view content_type = {});

std::string serialize(const ImageManifest& m);
std::string serialize(const ImageIndex& index);

// The entry of `index` for os/architecture (variant ignored; the first match wins). ENOENT
// listing the platforms the index has when none matches.
Result<Descriptor> select_platform(const ImageIndex& index, std::string_view os = "linux",
                                   std::string_view architecture = "amd64");

}  // namespace ferry::oci
