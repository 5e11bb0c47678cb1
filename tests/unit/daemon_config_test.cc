// parse_backend_config: nydusd's v1 config for the localfs and registry backends, the blobcache
// and fs_prefetch, into BackendConfig. Every error is one line naming the key, and no error
// ever carries a value of `auth` or `registry_token`.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "daemon/daemon_config.h"
#include "support/test_support.h"

namespace ferry::daemon {
namespace {

using nlohmann::json;

constexpr const char* kAuth = "YWxpY2U6czNjcjN0";  // base64("alice:s3cr3t")
constexpr const char* kToken = "tok-s3cr3t-value";

json full() {
  return {{"device",
           {{"backend",
             {{"type", "registry"},
              {"config",
               {{"scheme", "http"},
                {"host", "127.0.0.1:5000"},
                {"repo", "ns/app"},
                {"auth", kAuth},
                {"registry_token", kToken},
                {"skip_verify", true},
                {"ca_cert_files", json::array()},
                {"timeout", 7},
                {"connect_timeout", 3},
                {"retry_limit", 4}}}}},
            {"cache", {{"type", "blobcache"}, {"config", {{"work_dir", "/var/cache/ferry"}}}}}}},
          {"fs_prefetch", {{"enable", true}, {"threads_count", 4}, {"bandwidth_rate", 10485760}}}};
}

TEST(DaemonConfigTest, TheFullRegistryConfigIsParsed) {
  auto c = parse_backend_config(full().dump());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->type, "registry");
  EXPECT_EQ(c->registry.scheme, "http");
  EXPECT_EQ(c->registry.host, "127.0.0.1:5000");
  EXPECT_EQ(c->registry.repo, "ns/app");
  EXPECT_EQ(c->registry.auth, kAuth);
  EXPECT_EQ(c->registry.registry_token, kToken);
  EXPECT_TRUE(c->registry.skip_verify);
  EXPECT_EQ(c->registry.timeout, std::chrono::seconds(7));
  EXPECT_EQ(c->registry.connect_timeout, std::chrono::seconds(3));
  EXPECT_EQ(c->registry.retry_limit, 4);
  EXPECT_EQ(c->cache.type, "blobcache");
  EXPECT_EQ(c->cache.work_dir, "/var/cache/ferry");
  EXPECT_TRUE(c->prefetch.enable);
  EXPECT_EQ(c->prefetch.threads_count, 4U);
  EXPECT_EQ(c->prefetch.bandwidth_rate, 10485760U);
}

TEST(DaemonConfigTest, DefaultsAndAReadableCaFile) {
  test::TempDir dir;
  const std::string ca = dir / "ca.pem";
  std::ofstream(ca) << "-----BEGIN CERTIFICATE-----\n";
  json j = {{"device",
             {{"backend",
               {{"type", "registry"}, {"config", {{"host", "r.example:443"}, {"repo", "a/b"}, {"ca_cert_files", {ca}}}}}}}}};
  auto c = parse_backend_config(j.dump());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->registry.scheme, "https");
  EXPECT_EQ(c->registry.ca_cert_files, std::vector<std::string>{ca});
  EXPECT_EQ(c->registry.timeout, std::chrono::seconds(5));
  EXPECT_TRUE(c->cache.type.empty());
  EXPECT_FALSE(c->prefetch.enable);
}

TEST(DaemonConfigTest, LocalfsIsUnchanged) {
  auto c = parse_backend_config(R"({"device":{"backend":{"type":"localfs","config":{"dir":"/d","blob_file":"/f"}}}})");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->dir, "/d");
  EXPECT_EQ(c->blob_file, "/f");
}

struct BadCase {
  const char* key;  // what the message must name
  void (*edit)(json&);
};

json& reg(json& j) { return j["device"]["backend"]["config"]; }

TEST(DaemonConfigTest, EveryErrorIsOneLineNamingItsKeyAndNoSecret) {
  const BadCase cases[] = {
      {"device.backend.type", [](json& j) { j["device"]["backend"]["type"] = "oss"; }},
      {"device.backend.type", [](json& j) { j["device"]["backend"]["type"] = 1; }},
      {"device.backend.type", [](json& j) { j["device"]["backend"]["type"] = "oss\nsecond line"; }},
      {"device.backend.config", [](json& j) { j["device"]["backend"].erase("config"); }},
      {"device.backend.config", [](json& j) { j["device"]["backend"]["config"] = "x"; }},
      {"device.backend.config.host", [](json& j) { reg(j).erase("host"); }},
      {"device.backend.config.host", [](json& j) { reg(j)["host"] = 5000; }},
      {"device.backend.config.host", [](json& j) { reg(j)["host"] = "h/x"; }},
      {"device.backend.config.repo", [](json& j) { reg(j).erase("repo"); }},
      {"device.backend.config.repo", [](json& j) { reg(j)["repo"] = ""; }},
      {"device.backend.config.scheme", [](json& j) { reg(j)["scheme"] = "ftp"; }},
      {"device.backend.config.auth", [](json& j) { reg(j)["auth"] = 12; }},
      {"device.backend.config.auth", [](json& j) { reg(j)["auth"] = "alice:s3cr3t"; }},
      {"device.backend.config.auth", [](json& j) { reg(j)["auth"] = std::string(kAuth) + "="; }},
      {"device.backend.config.registry_token", [](json& j) { reg(j)["registry_token"] = json::array(); }},
      {"device.backend.config.skip_verify", [](json& j) { reg(j)["skip_verify"] = "yes"; }},
      {"device.backend.config.ca_cert_files", [](json& j) { reg(j)["ca_cert_files"] = "/ca.pem"; }},
      {"device.backend.config.ca_cert_files[0]", [](json& j) { reg(j)["ca_cert_files"] = {7}; }},
      {"device.backend.config.ca_cert_files[1]",
       [](json& j) { reg(j)["ca_cert_files"] = {"/dev/null", "/nonexistent/ca.pem"}; }},
      {"device.backend.config.timeout", [](json& j) { reg(j)["timeout"] = "5"; }},
      {"device.backend.config.timeout", [](json& j) { reg(j)["timeout"] = -1; }},
      {"device.backend.config.connect_timeout", [](json& j) { reg(j)["connect_timeout"] = 1.5; }},
      {"device.backend.config.retry_limit", [](json& j) { reg(j)["retry_limit"] = 1000; }},
      {"device.cache", [](json& j) { j["device"]["cache"] = 3; }},
      {"device.cache.type", [](json& j) { j["device"]["cache"]["type"] = "fscache"; }},
      {"device.cache.type", [](json& j) { j["device"]["cache"]["type"] = false; }},
      {"device.cache.type", [](json& j) { j["device"]["cache"]["type"] = "a\rb"; }},
      {"device.cache.config", [](json& j) { j["device"]["cache"]["config"] = "dir"; }},
      {"device.cache.config.work_dir", [](json& j) { j["device"]["cache"]["config"].erase("work_dir"); }},
      {"device.cache.config.work_dir", [](json& j) { j["device"]["cache"]["config"]["work_dir"] = 1; }},
      {"fs_prefetch", [](json& j) { j["fs_prefetch"] = true; }},
      {"fs_prefetch.enable", [](json& j) { j["fs_prefetch"]["enable"] = 1; }},
      {"fs_prefetch.threads_count", [](json& j) { j["fs_prefetch"]["threads_count"] = "4"; }},
      {"fs_prefetch.bandwidth_rate", [](json& j) { j["fs_prefetch"]["bandwidth_rate"] = -5; }},
  };
  for (const auto& c : cases) {
    json j = full();
    c.edit(j);
    auto parsed = parse_backend_config(j.dump());
    ASSERT_FALSE(parsed.ok()) << c.key << ": " << j.dump();
    const std::string& m = parsed.error().message;
    EXPECT_NE(m.find(c.key), std::string::npos) << c.key << ": " << m;
    // The key exactly (not a longer one that contains it).
    const auto at = m.find(c.key) + std::string(c.key).size();
    EXPECT_TRUE(at == m.size() || m[at] == ' ' || m[at] == ':' || m[at] == '\'' || m[at] == '"') << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_EQ(m.find(kAuth), std::string::npos) << m;
    EXPECT_EQ(m.find(kToken), std::string::npos) << m;
    EXPECT_EQ(m.find("s3cr3t"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace ferry::daemon
