// ImageStore over a layout and over Debian's docker-registry: an image copied layout ->
// registry by our code is resolved the same on both sides (an index resolved to linux/amd64),
// and skopeo accepts the registry copy.
#include <gtest/gtest.h>

#include <fstream>

#include "oci/base64.h"
#include "oci/image_store.h"
#include "oci/media_types.h"
#include "oci/registry_fixture.h"
#include "oci/test_image.h"

namespace ferry::oci {
namespace {

using test::RegistryConfig;
using test::RegistryServer;
using test::TempDir;

// The test image under `tag`, behind an index whose linux/amd64 entry is it.
void store_indexed_image(ImageStore& store, const test::TestImage& img, const std::string& tag) {
  ASSERT_TRUE(store.write_blob(img.layer_desc, img.layer).ok());
  ASSERT_TRUE(store.write_blob(img.config_desc, img.config).ok());
  auto m = store.put_manifest("amd64-" + tag, media_type::kOciManifest, img.manifest_bytes);
  ASSERT_TRUE(m.ok()) << m.error().message;
  ImageIndex index;
  index.media_type = media_type::kOciIndex;
  Descriptor other{std::string(media_type::kOciManifest), Digest::of(std::string_view("elsewhere")), 9, {}, {},
                   Platform{"arm64", "linux", "v8", ""}};
  Descriptor mine{std::string(media_type::kOciManifest), *m, static_cast<int64_t>(img.manifest_bytes.size()), {}, {},
                  Platform{"amd64", "linux", "", ""}};
  index.manifests = {other, mine};
  auto i = store.put_manifest(tag, media_type::kOciIndex, serialize(index));
  ASSERT_TRUE(i.ok()) << i.error().message;
}

TEST(ImageStoreE2E, LayoutToRegistryAndBackResolvesTheSameImage) {
  RegistryServer server(RegistryConfig{RegistryConfig::Auth::kBasic, false, "alice", "pa55:w0rd", 300, 300});
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "store");
  std::ofstream(tmp / "auth.json") << R"({"auths":{")" + server.host() + R"(":{"username":"alice","password":"pa55:w0rd"}}})";

  StoreOptions options;
  options.plain_http = true;
  options.authfile = tmp / "auth.json";
  auto src_ref = *ImageReference::parse("oci:" + tmp / "layout:v1");
  auto src = open_store(src_ref, options, /*create_layout=*/true);
  ASSERT_TRUE(src.ok()) << src.error().message;
  store_indexed_image(**src, img, "v1");

  auto from_layout = resolve_image(**src, src_ref);
  ASSERT_TRUE(from_layout.ok()) << from_layout.error().message;
  EXPECT_EQ(from_layout->manifest_digest, Digest::of(img.manifest_bytes));
  EXPECT_EQ(from_layout->config.bytes(), img.config);

  // Copy it blob by blob through files, as convert does.
  auto dst_ref = *ImageReference::parse(server.host() + "/ferry/copied:v1");
  auto dst = open_store(dst_ref, options, false);
  ASSERT_TRUE(dst.ok()) << dst.error().message;
  for (const auto& d : from_layout->manifest.layers) {
    ASSERT_TRUE((*src)->read_blob_to_file(d, tmp / "blob").ok());
    auto pushed = (*dst)->write_blob_file(d, tmp / "blob");
    ASSERT_TRUE(pushed.ok()) << pushed.error().message;
    EXPECT_TRUE(*pushed);
  }
  ASSERT_TRUE((*dst)->write_blob(from_layout->manifest.config, from_layout->config.bytes()).ok());
  ASSERT_TRUE((*dst)->put_manifest("v1", from_layout->manifest.media_type, serialize(from_layout->manifest)).ok());
  auto from_registry = resolve_image(**dst, dst_ref);
  ASSERT_TRUE(from_registry.ok()) << from_registry.error().message;
  EXPECT_EQ(from_registry->manifest_digest, from_layout->manifest_digest);
  EXPECT_EQ(from_registry->config.bytes(), from_layout->config.bytes());

  std::string out;
  ASSERT_EQ(ferry::test::run_shell("skopeo inspect --tls-verify=false --creds 'alice:pa55:w0rd' docker://" + server.host() +
                                 "/ferry/copied:v1 2>&1",
                             &out),
            0)
      << out;
  EXPECT_NE(out.find(img.layer_desc.digest.str()), std::string::npos) << out;

  // Without credentials (an authfile with no entry for the host) the registry refuses.
  std::ofstream(tmp / "empty.json") << R"({"auths":{}})";
  options.authfile = tmp / "empty.json";
  auto anonymous = open_store(dst_ref, options, false);
  ASSERT_TRUE(anonymous.ok());
  auto refused = resolve_image(**anonymous, dst_ref);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, EACCES);
  // An explicit authfile that does not exist is an error; a layout that does not exist too.
  options.authfile = tmp / "absent.json";
  EXPECT_EQ(open_store(dst_ref, options, false).error().code, ENOENT);
  EXPECT_FALSE(open_store(*ImageReference::parse("oci:" + tmp / "nothing"), options, false).ok());
}

TEST(ImageStoreE2E, AnIndexWithoutLinuxAmd64IsRefusedNamingWhatItHas) {
  TempDir tmp;
  auto ref = *ImageReference::parse("oci:" + tmp / "l:multi");
  auto store = open_store(ref, {}, true);
  ASSERT_TRUE(store.ok());
  ImageIndex index;
  index.media_type = media_type::kOciIndex;
  index.manifests = {Descriptor{std::string(media_type::kOciManifest), Digest::of(std::string_view("x")), 1, {}, {},
                                Platform{"arm64", "linux", "", ""}}};
  ASSERT_TRUE((*store)->put_manifest("multi", media_type::kOciIndex, serialize(index)).ok());
  auto r = resolve_image(**store, ref);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ENOENT);
  EXPECT_NE(r.error().message.find("linux/arm64"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("layout " + tmp / "l"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace ferry::oci
