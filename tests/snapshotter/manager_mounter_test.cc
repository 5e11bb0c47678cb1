// The ferryd config a Ferry image's daemon gets (ferry_daemon_config, manager_mounter.h): the
// registry backend for the reference's host and repository, plain http only for
// [remote] insecure_registries, the credentials of [remote] auth_file for that host only, the
// blob cache under the root; a malformed auth file is refused naming the key, never its secrets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "oci/base64.h"
#include "snapshotter/manager_mounter.h"
#include "support/test_support.h"

namespace ferry::snapshotter {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

FerryImage image_at(const std::string& reference) {
  auto ref = oci::ImageReference::parse(reference);
  EXPECT_TRUE(ref.ok());
  return FerryImage{"/mnt", "/boot", *ref, ""};
}

TEST(FerryDaemonConfig, RegistryBackendCredentialsAndCache) {
  test::TempDir dir;
  const std::string auth = dir / "config.json";
  std::ofstream(auth) << R"({"auths": {"127.0.0.1:5000": {"auth": ")" << oci::base64_encode("alice:s3cret")
                      << R"("}}})";
  manager::ManagerConfig config;
  config.root = dir / "root";
  config.remote.auth_file = auth;
  config.remote.insecure_registries = {"127.0.0.1:5000"};

  auto text = ferry_daemon_config(config, image_at("127.0.0.1:5000/ns/app:v1"));
  ASSERT_TRUE(text.ok()) << text.error().message;
  auto j = nlohmann::json::parse(*text);
  const auto& backend = j["device"]["backend"];
  EXPECT_EQ(backend["type"], "registry");
  EXPECT_EQ(backend["config"]["scheme"], "http");
  EXPECT_EQ(backend["config"]["host"], "127.0.0.1:5000");
  EXPECT_EQ(backend["config"]["repo"], "ns/app");
  EXPECT_EQ(backend["config"]["auth"], oci::base64_encode("alice:s3cret"));
  EXPECT_EQ(j["device"]["cache"]["type"], "blobcache");
  EXPECT_EQ(j["device"]["cache"]["config"]["work_dir"], dir / "root/cache");

  // Another host: https, and no credentials of the first one.
  auto other = ferry_daemon_config(config, image_at("registry.example/app"));
  ASSERT_TRUE(other.ok());
  auto o = nlohmann::json::parse(*other);
  EXPECT_EQ(o["device"]["backend"]["config"]["scheme"], "https");
  EXPECT_FALSE(o["device"]["backend"]["config"].contains("auth"));

  // No auth file: anonymous.
  config.remote.auth_file = dir / "missing.json";
  auto anonymous = ferry_daemon_config(config, image_at("127.0.0.1:5000/ns/app:v1"));
  ASSERT_TRUE(anonymous.ok());
  EXPECT_FALSE(nlohmann::json::parse(*anonymous)["device"]["backend"]["config"].contains("auth"));
}

TEST(FerryDaemonConfig, MalformedAuthFileIsRefusedWithoutItsSecrets) {
  test::TempDir dir;
  const std::string auth = dir / "config.json";
  std::ofstream(auth) << R"({"auths": {"127.0.0.1:5000": {"auth": "not base64 s3cret!"}}})";
  manager::ManagerConfig config;
  config.remote.auth_file = auth;
  auto r = ferry_daemon_config(config, image_at("127.0.0.1:5000/ns/app:v1"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_THAT(r.error().message, HasSubstr("[remote] auth_file"));
  EXPECT_THAT(r.error().message, Not(HasSubstr("s3cret")));
}

}  // namespace
}  // namespace ferry::snapshotter
