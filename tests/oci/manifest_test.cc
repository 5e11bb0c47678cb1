#include <gtest/gtest.h>

#include "oci/digest.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace ferry::oci {
namespace {

const std::string kD1 = "sha256:" + std::string(64, '1');
const std::string kD2 = "sha256:" + std::string(64, '2');

std::string oci_manifest_json() {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + kD1 + R"(","size":7},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + kD2 + R"(","size":42,
      "annotations":{"containerd.io/snapshot/ferry-blob":"true"}}],
    "annotations":{"a":"b"}})";
}

TEST(Digest, ParseAndHash) {
  EXPECT_EQ(Digest::of(std::string_view("abc")).str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.update("a", 1);
  h.update("bc", 2);
  EXPECT_EQ(h.finish(), Digest::of(std::string_view("abc")));
  EXPECT_TRUE(Digest::parse(kD1).ok());
  EXPECT_FALSE(Digest::parse("sha256:" + std::string(64, 'A')).ok());  // uppercase
  EXPECT_FALSE(Digest::parse("sha256:" + std::string(63, 'a')).ok());
  EXPECT_FALSE(Digest::parse("sha512:" + std::string(128, 'a')).ok());
}

TEST(Manifest, ParsesAnOciManifestWithAnnotations) {
  auto any = parse_manifest(oci_manifest_json());
  ASSERT_TRUE(any.ok()) << any.error().message;
  const auto& m = std::get<ImageManifest>(*any);
  EXPECT_EQ(m.media_type, media_type::kOciManifest);
  EXPECT_EQ(m.config.digest.str(), kD1);
  EXPECT_EQ(m.config.size, 7);
  ASSERT_EQ(m.layers.size(), 1U);
  EXPECT_EQ(m.layers[0].annotations.at("containerd.io/snapshot/ferry-blob"), "true");
  EXPECT_EQ(m.annotations.at("a"), "b");
}

TEST(Manifest, SerializeRoundTripsAndIsStable) {
  auto any = parse_manifest(oci_manifest_json());
  ASSERT_TRUE(any.ok());
  const auto& m = std::get<ImageManifest>(*any);
  const std::string once = serialize(m);
  auto again = parse_manifest(once);
  ASSERT_TRUE(again.ok()) << again.error().message;
  const auto& m2 = std::get<ImageManifest>(*again);
  EXPECT_EQ(m2.config, m.config);
  EXPECT_EQ(m2.layers, m.layers);
  EXPECT_EQ(serialize(m2), once);
}

TEST(Manifest, KindFromContentTypeOrShapeWhenMediaTypeIsAbsent) {
  const std::string bare = R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kD1 + R"(","size":1},"layers":[]})";
  auto shape = parse_manifest(bare);
  ASSERT_TRUE(shape.ok()) << shape.error().message;
  EXPECT_EQ(std::get<ImageManifest>(*shape).media_type, media_type::kOciManifest);
  auto typed = parse_manifest(bare, std::string(media_type::kDockerManifest) + "; charset=utf-8");
  ASSERT_TRUE(typed.ok());
  EXPECT_EQ(std::get<ImageManifest>(*typed).media_type, media_type::kDockerManifest);
  const std::string index = R"({"schemaVersion":2,"manifests":[]})";
  auto idx = parse_manifest(index);
  ASSERT_TRUE(idx.ok());
  EXPECT_EQ(std::get<ImageIndex>(*idx).media_type, media_type::kOciIndex);
}

TEST(Manifest, DockerManifestListResolvesToLinuxAmd64) {
  const std::string list = R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
   "manifests":[
    {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" + kD1 + R"(","size":10,
     "platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
    {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" + kD2 + R"(","size":11,
     "platform":{"architecture":"amd64","os":"linux"}}]})";
  auto any = parse_manifest(list);
  ASSERT_TRUE(any.ok()) << any.error().message;
  const auto& index = std::get<ImageIndex>(*any);
  EXPECT_EQ(index.media_type, media_type::kDockerManifestList);
  auto d = select_platform(index);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest.str(), kD2);
  auto none = select_platform(index, "linux", "s390x");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ENOENT);
  EXPECT_NE(none.error().message.find("linux/arm64/v8"), std::string::npos) << none.error().message;
}

TEST(Manifest, UntrustedJsonGetsErrorsNamingTheField) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "not valid JSON"},
      {"[]", "not a JSON object"},
      {R"({"mediaType":"application/vnd.oci.image.manifest.v1+json"})", "schemaVersion: missing"},
      {R"({"schemaVersion":1,"name":"x"})", "schema 1"},
      {R"({"schemaVersion":"2"})", "schemaVersion: must be an integer"},
      {R"({"schemaVersion":2,"mediaType":"text/plain","layers":[]})", "not an image manifest"},
      {R"({"schemaVersion":2,"mediaType":7})", "mediaType: must be a string"},
      {R"({"schemaVersion":2,"layers":[]})", "config: missing"},
      {R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kD1 + R"(","size":1}})", "layers: missing"},
      {R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]})", "config.digest"},
      {R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kD1 + R"(","size":-1},"layers":[]})",
       "config.size"},
      {R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kD1 + R"(","size":1.5},"layers":[]})",
       "config.size: must be an integer"},
      {R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kD1 + R"(","size":1},"layers":[{"mediaType":"x","digest":")" +
           kD2 + R"(","size":1,"annotations":{"k":1}}]})",
       "layers[0].annotations.k"},
      {R"({"schemaVersion":2,"manifests":[{"mediaType":"x","digest":")" + kD1 + R"(","size":1,"platform":{"os":"linux"}}]})",
       "manifests[0].platform.architecture: missing"},
  };
  for (const auto& [json, why] : cases) {
    auto r = parse_manifest(json);
    ASSERT_FALSE(r.ok()) << json;
    EXPECT_EQ(r.error().code, EINVAL);
    EXPECT_NE(r.error().message.find(why), std::string::npos) << json << " -> " << r.error().message;
  }
  auto contradiction = parse_manifest(oci_manifest_json(), media_type::kDockerManifest);
  ASSERT_FALSE(contradiction.ok());
  EXPECT_NE(contradiction.error().message.find("contradicts"), std::string::npos);
  EXPECT_FALSE(parse_manifest(std::string(kMaxManifestSize + 1, ' ')).ok());
}

TEST(Manifest, DeepNestingIsRefusedBeforeParsing) {
  const std::string deep = R"({"schemaVersion":2,"annotations":)" + std::string(100, '[') + std::string(100, ']') + "}";
  auto r = parse_manifest(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nested deeper"), std::string::npos) << r.error().message;
  auto c = ImageConfig::parse(R"({"x":)" + std::string(100000, '[') + std::string(100000, ']') + "}");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("nested deeper"), std::string::npos);
  // Brackets inside strings are text, not nesting.
  EXPECT_TRUE(ImageConfig::parse(R"({"x":")" + std::string(100, '[') + R"(\"]"})").ok());
}

TEST(ImageConfig, KeepsBytesUntilDiffIdsChangeThenKeepsKeyOrder) {
  const std::string src = R"({"os":"linux","architecture":"amd64","config":{"Entrypoint":["/bin/sh"],"Env":["A=1"]},)"
                          R"("rootfs":{"type":"layers","diff_ids":[")" + kD1 + R"("]},"history":[{"created_by":"x"}]})";
  auto c = ImageConfig::parse(src);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->bytes(), src);
  EXPECT_EQ(c->digest(), Digest::of(src));
  ASSERT_EQ(c->diff_ids().size(), 1U);
  EXPECT_EQ(c->os(), "linux");
  EXPECT_EQ(c->architecture(), "amd64");
  const Digest d2 = *Digest::parse(kD2);
  c->set_diff_ids({d2, d2});
  EXPECT_NE(c->bytes(), src);
  EXPECT_LT(c->bytes().find("\"os\""), c->bytes().find("\"config\""));  // original order
  EXPECT_NE(c->bytes().find("\"Entrypoint\":[\"/bin/sh\"]"), std::string::npos);
  auto reparsed = ImageConfig::parse(c->bytes());
  ASSERT_TRUE(reparsed.ok());
  EXPECT_EQ(reparsed->diff_ids(), (std::vector<Digest>{d2, d2}));
  const Descriptor desc = c->descriptor(std::string(media_type::kOciConfig));
  EXPECT_EQ(desc.digest, Digest::of(c->bytes()));
  EXPECT_EQ(desc.size, static_cast<int64_t>(c->bytes().size()));
}

TEST(ImageConfig, RefusesMalformedRootfs) {
  for (const std::string bad : {R"([])", R"({"rootfs":[]})", R"({"rootfs":{"type":"other"}})",
                                R"({"rootfs":{"type":"layers","diff_ids":["sha256:x"]}})", R"({"os":1})"}) {
    auto c = ImageConfig::parse(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.error().code, EINVAL);
    EXPECT_NE(c.error().message.find("invalid image config"), std::string::npos);
  }
}

}  // namespace
}  // namespace ferry::oci
