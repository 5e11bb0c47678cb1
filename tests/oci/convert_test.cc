// `ferry-image convert` end to end: a layout made here -> a Debian docker-registry with htpasswd
// Basic auth; skopeo reads the result back; the bootstrap layer unpacks to image/image.boot,
// which `ferry-image check` verifies against the pushed blobs. Needs the builder's ferry-image
// (registered only when that target exists).
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "oci/bootstrap_layer.h"
#include "oci/layout.h"
#include "oci/media_types.h"
#include "oci/registry_fixture.h"
#include "oci/test_image.h"

namespace ferry::oci {
namespace {

using test::RegistryConfig;
using test::RegistryServer;
using test::TempDir;

std::string ferry_image() { return std::string(FERRY_BINARY_DIR) + "/bin/ferry-image"; }

TEST(ConvertE2E, ALayoutBecomesAFerryImageInARegistry) {
  RegistryConfig rc;
  rc.auth = RegistryConfig::Auth::kBasic;
  RegistryServer server(rc);
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "convert");
  auto layout = OciLayout::create(tmp / "src");
  ASSERT_TRUE(layout.ok());
  ASSERT_TRUE(layout->write_blob(img.layer, img.layer_desc.media_type).ok());
  ASSERT_TRUE(layout->write_blob(img.config, img.config_desc.media_type).ok());
  ASSERT_TRUE(layout->set_tag(*layout->write_blob(img.manifest_bytes, std::string(media_type::kOciManifest)), "v1").ok());

  const std::string creds = "alice:" + server.config().password;
  const std::string cmd = ferry_image() + " convert --source oci:" + tmp / "src:v1" + " --target " + server.host() +
                          "/ferry/conv:v1 --plain-http --target-creds '" + creds + "'";
  std::string out;
  ASSERT_EQ(ferry::test::run(cmd + " 2>&1", &out), 0) << out;
  const auto summary = nlohmann::json::parse(out);
  ASSERT_EQ(summary["blobs"].size(), 1U);
  EXPECT_TRUE(summary["blobs"][0]["uploaded"].get<bool>());
  EXPECT_EQ(out.find(server.config().password), std::string::npos);
  // Again: everything is there already.
  ASSERT_EQ(ferry::test::run(cmd + " 2>&1", &out), 0) << out;
  EXPECT_FALSE(nlohmann::json::parse(out)["blobs"][0]["uploaded"].get<bool>());

  ASSERT_EQ(ferry::test::run("skopeo copy --src-tls-verify=false --src-creds '" + creds + "' docker://" + server.host() +
                                 "/ferry/conv:v1 oci:" + tmp / "back:v1 2>&1",
                             &out),
            0)
      << out;
  auto back = OciLayout::open(tmp / "back");
  ASSERT_TRUE(back.ok());
  auto mdesc = back->resolve("v1");
  ASSERT_TRUE(mdesc.ok());
  auto any = parse_manifest(*back->read_blob(*mdesc, kMaxManifestSize), mdesc->media_type);
  ASSERT_TRUE(any.ok()) << any.error().message;
  const auto& m = std::get<ImageManifest>(*any);
  ASSERT_EQ(m.layers.size(), 2U);
  EXPECT_EQ(m.layers[0].media_type, kFerryBlobMediaType);
  EXPECT_EQ(m.layers[0].annotations.at(std::string(kFerryBlobAnnotation)), "true");
  EXPECT_EQ(m.layers[1].media_type, media_type::kOciLayerGzip);
  EXPECT_EQ(m.layers[1].annotations.at(std::string(kFerryBootstrapAnnotation)), "true");
  auto config = ImageConfig::parse(*back->read_blob(m.config, kMaxConfigSize));
  ASSERT_TRUE(config.ok());
  EXPECT_NE(config->bytes().find("\"SALT=convert\""), std::string::npos) << config->bytes();
  ASSERT_EQ(config->diff_ids().size(), 2U);
  EXPECT_EQ(config->diff_ids()[0], m.layers[0].digest);

  ASSERT_EQ(ferry::test::run("mkdir -p " + tmp / "x " + tmp / "blobs" + " && tar -xzf " + back->blob_path(m.layers[1].digest) +
                             " -C " + tmp / "x" + " && cp " + back->blob_path(m.layers[0].digest) + " " + tmp / "blobs/"),
            0);
  ASSERT_EQ(ferry::test::run(ferry_image() + " check " + tmp / "x/image/image.boot --blob-dir " + tmp / "blobs 2>&1", &out), 0)
      << out;
  ASSERT_EQ(ferry::test::run(ferry_image() + " inspect " + tmp / "x/image/image.boot --tree 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("/etc/greeting"), std::string::npos) << out;
}

TEST(ConvertE2E, ABadReferenceIsOneLineAndExitStatus1) {
  std::string out;
  const int status = ferry::test::run(ferry_image() + " convert --source busybox --target oci:/nonexistent:v1 2>&1", &out);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("invalid image reference 'busybox'"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

}  // namespace
}  // namespace ferry::oci
