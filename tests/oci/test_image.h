// A small image made at test time for registry tests: one gzip'd tar layer (made by tar and
// gzip), an OCI config naming its diff_id, and an OCI manifest.
#pragma once

#include <string>

#include "oci/descriptor.h"
#include "oci/image_config.h"
#include "oci/manifest.h"

namespace ferry::oci::test {

struct TestImage {
  std::string layer;  // tar.gz bytes
  Descriptor layer_desc;
  std::string config;
  Descriptor config_desc;
  ImageManifest manifest;
  std::string manifest_bytes;
};

// `dir` is a scratch directory; `salt` makes the content (and so the digests) unique.
TestImage make_test_image(const std::string& dir, const std::string& salt);

}  // namespace ferry::oci::test
