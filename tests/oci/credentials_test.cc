#include <gtest/gtest.h>

#include <fstream>

#include "oci/auth_challenge.h"
#include "oci/base64.h"
#include "oci/credentials.h"
#include "oci/token_source.h"
#include "support/test_support.h"

namespace ferry::oci {
namespace {

TEST(Base64, RoundTripsEveryLength) {
  EXPECT_EQ(base64_encode("user:pa:ss"), "dXNlcjpwYTpzcw==");
  for (size_t n = 0; n < 10; ++n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += static_cast<char>(0xF0 + i);
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  }
  EXPECT_FALSE(base64_decode("a*b=").has_value());
  EXPECT_FALSE(base64_decode("abcde").has_value());
}

TEST(Credentials, UserPassAndBase64) {
  auto c = Credentials::from_user_pass("alice:s3:cret");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->password, "s3:cret");
  EXPECT_FALSE(Credentials::from_user_pass("nocolon").ok());
  EXPECT_FALSE(Credentials::from_user_pass(":pass").ok());
  auto b = Credentials::from_base64(base64_encode("bob:pw"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->username, "bob");
  auto bad = Credentials::from_base64("!!!");
  ASSERT_FALSE(bad.ok());
}

TEST(Credentials, DockerConfigJsonByHost) {
  test::TempDir tmp;
  const std::string file = tmp / "config.json";
  std::ofstream(file) << R"({"auths":{
      "https://127.0.0.1:5000/v1/":{"auth":")" + base64_encode("alice:secret1") + R"("},
      "reg.example:443":{"username":"bob","password":"secret2"},
      "https://index.docker.io/v1/":{"auth":")" + base64_encode("hub:secret3") + R"("},
      "broken.example":{"auth":"###"}}})";
  auto a = load_docker_credentials(file, "127.0.0.1:5000");
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->username, "alice");
  EXPECT_EQ((*a)->password, "secret1");
  auto b = load_docker_credentials(file, "reg.example:443");
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->password, "secret2");
  auto hub = load_docker_credentials(file, "docker.io");
  ASSERT_TRUE(hub.ok() && hub->has_value());
  EXPECT_EQ((*hub)->username, "hub");
  auto none = load_docker_credentials(file, "other:1");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto broken = load_docker_credentials(file, "broken.example");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code, EINVAL);
  EXPECT_NE(broken.error().message.find("broken.example"), std::string::npos);
  EXPECT_EQ(broken.error().message.find("###"), std::string::npos);  // values are never shown
  auto missing = load_docker_credentials(tmp / "absent.json", "x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  std::ofstream(tmp / "bad.json") << "{";
  EXPECT_EQ(load_docker_credentials(tmp / "bad.json", "x").error().code, EINVAL);
}

TEST(Credentials, DefaultAuthfileFollowsDockerConfigThenHome) {
  const char* old_dc = std::getenv("DOCKER_CONFIG");
  const std::string saved = old_dc != nullptr ? old_dc : "";
  const char* old_home = std::getenv("HOME");
  const std::string saved_home = old_home != nullptr ? old_home : "";
  setenv("DOCKER_CONFIG", "/x/y", 1);
  EXPECT_EQ(default_authfile(), "/x/y/config.json");
  unsetenv("DOCKER_CONFIG");
  setenv("HOME", "/home/h", 1);
  EXPECT_EQ(default_authfile(), "/home/h/.docker/config.json");
  if (old_dc != nullptr) setenv("DOCKER_CONFIG", saved.c_str(), 1);
  if (old_home != nullptr) setenv("HOME", saved_home.c_str(), 1);
}

TEST(AuthChallenge, ParsesBearerAndBasic) {
  auto c = parse_auth_challenge(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="x\"y")");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->param("realm"), "https://auth.example/token");
  EXPECT_EQ(c->param("service"), "registry.example");
  EXPECT_EQ(c->param("scope"), "repository:a/b:pull,push");
  EXPECT_EQ(c->param("error"), "x\"y");
  auto b = parse_auth_challenge(R"(Basic realm="Registry Realm")");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->scheme, "basic");
  EXPECT_EQ(b->param("realm"), "Registry Realm");
  EXPECT_FALSE(parse_auth_challenge("").has_value());
  EXPECT_FALSE(parse_auth_challenge("  ,").has_value());
}

TEST(TokenCache, HandsOutATokenOnlyWhileFresh) {
  TokenCache cache;
  cache.put("s", "tok", std::chrono::seconds(100));
  EXPECT_EQ(cache.get("s"), "tok");
  EXPECT_FALSE(cache.get("other").has_value());
  // A 1 s token is due at once minus a fifth of its life: 800 ms from now.
  cache.put("short", "t1", std::chrono::seconds(1));
  EXPECT_TRUE(cache.get("short").has_value());
  EXPECT_TRUE(test::wait_until([&] { return !cache.get("short").has_value(); }, std::chrono::seconds(3)));
  cache.drop_if("s", "another");  // refreshed meanwhile by someone else: kept
  EXPECT_EQ(cache.get("s"), "tok");
  cache.drop_if("s", "tok");
  EXPECT_FALSE(cache.get("s").has_value());
}

}  // namespace
}  // namespace ferry::oci
