#include "oci/test_image.h"

#include <gtest/gtest.h>

#include <fstream>

#include "oci/media_types.h"
#include "support/test_support.h"

namespace ferry::oci::test {

TestImage make_test_image(const std::string& dir, const std::string& salt) {
  TestImage img;
  const std::string root = dir + "/rootfs-" + salt;
  EXPECT_EQ(ferry::test::run_shell("mkdir -p " + root + "/etc && echo 'hello " + salt + "' > " + root +
                             "/etc/greeting && head -c 300000 /dev/urandom > " + root + "/data.bin"),
            0);
  const std::string tar = dir + "/layer-" + salt + ".tar";
  EXPECT_EQ(ferry::test::run_shell("tar --sort=name -C " + root + " -cf " + tar + " . && gzip -n -k -f " + tar), 0);
  const std::string uncompressed = ferry::test::read_file(tar);
  img.layer = ferry::test::read_file(tar + ".gz");
  img.layer_desc = {std::string(media_type::kOciLayerGzip), Digest::of(img.layer),
                    static_cast<int64_t>(img.layer.size()), {}, {}, {}};
  img.config = R"({"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"],"Env":["SALT=)" + salt +
               R"("]},"rootfs":{"type":"layers","diff_ids":[")" + Digest::of(uncompressed).str() + R"("]}})";
  img.config_desc = {std::string(media_type::kOciConfig), Digest::of(img.config),
                     static_cast<int64_t>(img.config.size()), {}, {}, {}};
  img.manifest.media_type = media_type::kOciManifest;
  img.manifest.config = img.config_desc;
  img.manifest.layers = {img.layer_desc};
  img.manifest_bytes = serialize(img.manifest);
  return img;
}

}  // namespace ferry::oci::test
