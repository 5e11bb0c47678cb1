#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "oci/file_util.h"
#include "oci/layout.h"
#include "oci/media_types.h"
#include "support/test_support.h"

namespace ferry::oci {
namespace {

TEST(OciLayout, CreateWriteTagResolveRead) {
  test::TempDir tmp;
  auto layout = OciLayout::create(tmp / "img");
  ASSERT_TRUE(layout.ok()) << layout.error().message;
  EXPECT_EQ(test::read_file(tmp / "img/oci-layout"), R"({"imageLayoutVersion":"1.0.0"})");
  auto blob = layout->write_blob("hello", "application/octet-stream");
  ASSERT_TRUE(blob.ok());
  EXPECT_TRUE(layout->has_blob(blob->digest));
  EXPECT_EQ(test::read_file(layout->blob_path(blob->digest)), "hello");
  auto read = layout->read_blob(*blob, 100);
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(*read, "hello");
  EXPECT_TRUE(layout->verify_blob(*blob).ok());

  Descriptor manifest = *layout->write_blob("{}", std::string(media_type::kOciManifest));
  ASSERT_TRUE(layout->set_tag(manifest, "v1").ok());
  ASSERT_TRUE(layout->set_tag(manifest, "v2").ok());
  ASSERT_TRUE(layout->set_tag(*blob, "v1").ok());  // retag replaces
  auto v1 = layout->resolve("v1");
  ASSERT_TRUE(v1.ok()) << v1.error().message;
  EXPECT_EQ(v1->digest, blob->digest);
  EXPECT_EQ(v1->annotations.at(std::string(kRefNameAnnotation)), "v1");
  EXPECT_EQ(layout->read_index()->manifests.size(), 2U);
  auto missing = layout->resolve("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find("v2"), std::string::npos) << missing.error().message;
  auto ambiguous = layout->resolve("");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_NE(ambiguous.error().message.find("2 manifests"), std::string::npos);

  auto reopened = OciLayout::open(tmp / "img");
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(reopened->resolve("v2")->digest, manifest.digest);
}

TEST(OciLayout, ReadsVerifyDigestAndSize) {
  test::TempDir tmp;
  auto layout = OciLayout::create(tmp.path());
  ASSERT_TRUE(layout.ok());
  auto blob = *layout->write_blob("original", "x");
  std::ofstream(layout->blob_path(blob.digest)) << "tampered";
  auto read = layout->read_blob(blob, 100);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code, EBADMSG);
  EXPECT_NE(read.error().message.find(blob.digest.str()), std::string::npos);
  EXPECT_NE(read.error().message.find("digest mismatch"), std::string::npos);
  EXPECT_EQ(layout->verify_blob(blob).error().code, EBADMSG);
  std::ofstream(layout->blob_path(blob.digest)) << "short";
  EXPECT_EQ(layout->read_blob(blob, 100).error().code, EBADMSG);
  EXPECT_EQ(layout->read_blob(blob, 3).error().code, EFBIG);
  Descriptor absent = blob;
  absent.digest = Digest::of(std::string_view("absent"));
  EXPECT_EQ(layout->read_blob(absent, 100).error().code, ENOENT);
}

TEST(OciLayout, ImportsAFileAsABlob) {
  test::TempDir tmp;
  auto layout = OciLayout::create(tmp / "l");
  std::string big(3 << 20, 'x');
  big[12345] = 'y';
  ASSERT_TRUE(write_file_atomic(tmp / "layer.tar", big).ok());
  auto d = layout->import_blob_file(tmp / "layer.tar", std::string(media_type::kOciLayerTar));
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->digest, Digest::of(big));
  EXPECT_EQ(d->size, static_cast<int64_t>(big.size()));
  EXPECT_TRUE(layout->verify_blob(*d).ok());
  std::string leftovers;
  EXPECT_EQ(test::run_shell("ls -A " + tmp / "l/blobs/sha256", &leftovers), 0);
  EXPECT_EQ(leftovers, std::string(d->digest.hex()) + "\n");  // no temporary file left
}

TEST(OciLayout, RefusesWhatIsNotALayout) {
  test::TempDir tmp;
  auto none = OciLayout::open(tmp.path());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ENOENT);
  EXPECT_NE(none.error().message.find("not an OCI image layout"), std::string::npos);
  std::ofstream(tmp / "oci-layout") << R"({"imageLayoutVersion":"2.0.0"})";
  EXPECT_EQ(OciLayout::open(tmp.path()).error().code, EINVAL);
  std::ofstream(tmp / "oci-layout") << R"({"imageLayoutVersion":"1.0.0"})";
  std::ofstream(tmp / "index.json") << R"({"schemaVersion":2,"manifests":[{"digest":"bad"}]})";
  auto layout = OciLayout::open(tmp.path());
  ASSERT_TRUE(layout.ok());
  auto index = layout->read_index();
  ASSERT_FALSE(index.ok());
  EXPECT_NE(index.error().message.find("index.json"), std::string::npos);
}

}  // namespace
}  // namespace ferry::oci
