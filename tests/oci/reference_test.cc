#include <gtest/gtest.h>

#include "oci/reference.h"

namespace ferry::oci {
namespace {

TEST(ImageReference, RegistryWithPortTagAndDigest) {
  auto r = ImageReference::parse("127.0.0.1:5000/ns/app:v1.2");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->is_layout());
  EXPECT_EQ(r->host, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "ns/app");
  EXPECT_EQ(r->tag, "v1.2");
  EXPECT_FALSE(r->digest.valid());
  EXPECT_EQ(r->manifest_reference(), "v1.2");
  EXPECT_EQ(r->str(), "127.0.0.1:5000/ns/app:v1.2");

  const std::string hex(64, 'a');
  auto d = ImageReference::parse("registry.example.com/app@sha256:" + hex);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->host, "registry.example.com");
  EXPECT_EQ(d->repository, "app");
  EXPECT_TRUE(d->tag.empty());
  EXPECT_EQ(d->manifest_reference(), "sha256:" + hex);

  auto both = ImageReference::parse("localhost/a/b:t@sha256:" + hex);
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ(both->tag, "t");
  EXPECT_EQ(both->manifest_reference(), "sha256:" + hex);  // the digest wins
}

TEST(ImageReference, DefaultsToLatestAndAcceptsIpv6) {
  auto r = ImageReference::parse("[::1]:5000/app");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->host, "[::1]:5000");
  EXPECT_EQ(r->tag, "latest");
}

TEST(ImageReference, Layout) {
  auto r = ImageReference::parse("oci:/tmp/img:v1");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->is_layout());
  EXPECT_EQ(r->layout_dir, "/tmp/img");
  EXPECT_EQ(r->tag, "v1");
  auto untagged = ImageReference::parse("oci:rel/dir");
  ASSERT_TRUE(untagged.ok());
  EXPECT_EQ(untagged->layout_dir, "rel/dir");
  EXPECT_TRUE(untagged->tag.empty());
  EXPECT_EQ(untagged->str(), "oci:rel/dir");
}

TEST(ImageReference, MalformedReferencesAreRefusedWithTheReason) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "empty"},
      {"busybox", "no registry host"},
      {"library/busybox", "not a registry host"},
      {"host:99999/app", "invalid port"},
      {"host:0/app", "invalid port"},
      {"127.0.0.1:5000/App", "invalid repository"},
      {"127.0.0.1:5000/a//b", "invalid repository"},
      {"127.0.0.1:5000/a-/b", "invalid repository"},
      {"127.0.0.1:5000/", "invalid repository"},
      {"127.0.0.1:5000/app:", "invalid tag"},
      {"127.0.0.1:5000/app:-x", "invalid tag"},
      {"127.0.0.1:5000/app@sha256:abc", "invalid digest"},
      {"127.0.0.1:5000/app@md5:" + std::string(32, 'a'), "only sha256"},
      {"127.0.0.1:5000/a b", "space"},
      {"oci:", "oci:DIR"},
      {"oci:dir:bad tag", "invalid tag"},
      {"-bad.host/app", "invalid registry host"},
  };
  for (const auto& [text, why] : cases) {
    auto r = ImageReference::parse(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code, EINVAL) << text;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << text << " -> " << r.error().message;
    EXPECT_NE(r.error().message.find("invalid image reference"), std::string::npos);
  }
}

TEST(ImageReference, RepositoryGrammar) {
  EXPECT_TRUE(is_valid_repository("a"));
  EXPECT_TRUE(is_valid_repository("a.b_c__d--e/f0"));
  EXPECT_FALSE(is_valid_repository("a..b"));
  EXPECT_FALSE(is_valid_repository("a___b"));
  EXPECT_FALSE(is_valid_repository("_a"));
  EXPECT_FALSE(is_valid_repository(std::string(256, 'a')));
  EXPECT_TRUE(is_valid_tag("v1.0-rc_1"));
  EXPECT_FALSE(is_valid_tag(std::string(129, 'a')));
  EXPECT_FALSE(is_valid_tag(".x"));
}

}  // namespace
}  // namespace ferry::oci
