#include "manager/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <random>

#include "manager/events.h"
#include "support/test_support.h"

namespace ferry::manager {
namespace {

using ::testing::HasSubstr;

// Parses `body` with the required version line in front.
Result<ManagerConfig> parse(const std::string& body) {
  return parse_config("version = 1\n" + body, "test.toml");
}

// Expects a refusal with EINVAL whose message contains every one of `parts`.
void expect_refused(const std::string& body, std::initializer_list<std::string> parts) {
  auto r = parse(body);
  ASSERT_FALSE(r.ok()) << "accepted:\n" << body;
  EXPECT_EQ(r.error().code, EINVAL) << r.error().message;
  for (const auto& p : parts) EXPECT_THAT(r.error().message, HasSubstr(p)) << "for:\n" << body;
}

void expect_same(const ManagerConfig& a, const ManagerConfig& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.root, b.root);
  EXPECT_EQ(a.daemon_mode, b.daemon_mode);
  EXPECT_EQ(a.daemon.nydusd_path, b.daemon.nydusd_path);
  EXPECT_EQ(a.daemon.recover_policy, b.daemon.recover_policy);
  EXPECT_EQ(a.daemon.failover_policy, b.daemon.failover_policy);
  EXPECT_EQ(a.daemon.threads_number, b.daemon.threads_number);
  EXPECT_EQ(a.daemon.fs_driver, b.daemon.fs_driver);
  EXPECT_EQ(a.daemon.recover_attempts, b.daemon.recover_attempts);
  EXPECT_EQ(a.daemon.hot_standby, b.daemon.hot_standby);
  EXPECT_EQ(a.address, b.address);
  EXPECT_EQ(a.system.enable, b.system.enable);
  EXPECT_EQ(a.system.address, b.system.address);
  EXPECT_EQ(a.log.level, b.log.level);
  EXPECT_EQ(a.log.dir, b.log.dir);
  EXPECT_EQ(a.metrics.address, b.metrics.address);
  EXPECT_EQ(a.remote.auth_file, b.remote.auth_file);
  EXPECT_EQ(a.remote.insecure_registries, b.remote.insecure_registries);
}

TEST(ManagerConfig, RemoteSection) {
  auto r = parse("[remote]\nauth_file = \"/etc/ferry/auth.json\"\ninsecure_registries = [\"127.0.0.1:5000\", \"reg.local\"]\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->remote.auth_file, "/etc/ferry/auth.json");
  EXPECT_EQ(r->remote.insecure_registries, (std::vector<std::string>{"127.0.0.1:5000", "reg.local"}));
  EXPECT_EQ(ManagerConfig{}.remote.auth_file, "/root/.docker/config.json");
  EXPECT_TRUE(ManagerConfig{}.remote.insecure_registries.empty());
  EXPECT_TRUE(parse("[remote]\nauth_file = \"\"\n").ok());

  auto rel = parse("[remote]\nauth_file = \"auth.json\"\n");
  ASSERT_FALSE(rel.ok());
  EXPECT_THAT(rel.error().message, HasSubstr("[remote] auth_file"));
  auto url = parse("[remote]\ninsecure_registries = [\"http://127.0.0.1:5000\"]\n");
  ASSERT_FALSE(url.ok());
  EXPECT_THAT(url.error().message, HasSubstr("[remote] insecure_registries"));
  EXPECT_THAT(url.error().message, HasSubstr("http://127.0.0.1:5000"));
  auto num = parse("[remote]\ninsecure_registries = [5000]\n");
  ASSERT_FALSE(num.ok());
  EXPECT_THAT(num.error().message, HasSubstr("[remote] insecure_registries"));
  auto str = parse("[remote]\ninsecure_registries = \"127.0.0.1:5000\"\n");
  ASSERT_FALSE(str.ok());
  EXPECT_THAT(str.error().message, HasSubstr("an array of strings"));
}

TEST(ManagerConfig, VersionOnlyGivesDefaults) {
  auto r = parse("");
  ASSERT_TRUE(r.ok()) << r.error().message;
  expect_same(*r, ManagerConfig{});
  EXPECT_TRUE(validate(ManagerConfig{}).ok());
}

TEST(ManagerConfig, EveryKeyParsed) {
  auto r = parse(R"(
root = "/srv/ferry"
daemon_mode = "shared"
address = "/run/other/grpc.sock"
[daemon]
nydusd_path = "/opt/ferry/bin/ferryd"
recover_policy = "restart"
failover_policy = "none"
threads_number = 16
fs_driver = "fusedev"
recover_attempts = 7
hot_standby = false
[system]
enable = false
address = "/run/other/api.sock"
[log]
level = "debug"
dir = "/var/log/ferry"
[metrics]
address = "127.0.0.1:9110"
)");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ManagerConfig& c = *r;
  EXPECT_EQ(c.version, 1);
  EXPECT_EQ(c.root, "/srv/ferry");
  EXPECT_EQ(c.daemon_mode, DaemonMode::kShared);
  EXPECT_EQ(c.daemon.nydusd_path, "/opt/ferry/bin/ferryd");
  EXPECT_EQ(c.daemon.recover_policy, RecoverPolicy::kRestart);
  EXPECT_EQ(c.daemon.failover_policy, "none");
  EXPECT_EQ(c.daemon.threads_number, 16u);
  EXPECT_EQ(c.daemon.fs_driver, "fusedev");
  EXPECT_EQ(c.daemon.recover_attempts, 7u);
  EXPECT_FALSE(c.daemon.hot_standby);
  EXPECT_FALSE(c.system.enable);
  EXPECT_EQ(c.system.address, "/run/other/api.sock");
  EXPECT_EQ(c.address, "/run/other/grpc.sock");
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.dir, "/var/log/ferry");
  EXPECT_EQ(c.metrics.address, "127.0.0.1:9110");
  EXPECT_EQ(c.db_path(), "/srv/ferry/ferry.db");
  EXPECT_EQ(c.supervisor_dir(), "/srv/ferry/supervisor");
  EXPECT_EQ(c.daemons_dir(), "/srv/ferry/daemons");
  EXPECT_EQ(c.shared_mnt(), "/srv/ferry/mnt");
  EXPECT_EQ(c.log_dir(), "/var/log/ferry");
}

TEST(ManagerConfig, DefaultsPerSection) {
  // A section with one key keeps the defaults of the others.
  auto r = parse("[daemon]\nthreads_number = 2\n[log]\nlevel = \"warn\"\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ManagerConfig want;
  want.daemon.threads_number = 2;
  want.log.level = "warn";
  expect_same(*r, want);
  EXPECT_EQ(r->log_dir(), "/var/lib/ferry/logs");
}

TEST(ManagerConfig, DottedKeysAndInlineTablesWork) {
  auto r = parse("daemon.recover_policy = \"none\"\nmetrics = { address = \"[::1]:0\" }\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->daemon.recover_policy, RecoverPolicy::kNone);
  EXPECT_EQ(r->metrics.address, "[::1]:0");
}

TEST(ManagerConfig, AllPoliciesAndLevels) {
  for (const char* p : {"none", "restart", "failover"}) {
    auto r = parse(std::string("[daemon]\nrecover_policy = \"") + p + "\"\n");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(to_string(r->daemon.recover_policy), p);
    EXPECT_EQ(to_string(*parse_recover_policy(p)), p);
  }
  for (const char* l : {"trace", "debug", "info", "warn", "error", "off"}) {
    EXPECT_TRUE(parse(std::string("[log]\nlevel = \"") + l + "\"\n").ok()) << l;
  }
  for (const char* a : {"127.0.0.1:1", "[::1]:65535", "localhost:9100"}) {
    EXPECT_TRUE(parse(std::string("[metrics]\naddress = \"") + a + "\"\n").ok()) << a;
  }
  EXPECT_EQ(to_string(DaemonMode::kDedicated), "dedicated");
  EXPECT_EQ(to_string(DaemonMode::kShared), "shared");
  EXPECT_TRUE(parse("[daemon]\nthreads_number = 1\nrecover_attempts = 1\n").ok());
  EXPECT_TRUE(parse("[daemon]\nthreads_number = 256\nrecover_attempts = 100\n").ok());
}

TEST(ManagerConfig, UnknownKeysNamed) {
  expect_refused("[daemon]\nnydus_path = \"/x\"\n", {"unknown key '[daemon] nydus_path'"});
  expect_refused("rot = \"/x\"\n", {"unknown key 'rot'"});
  expect_refused("[sytem]\nenable = true\n", {"unknown key 'sytem'"});
  expect_refused("[system]\nlisten = \"/x\"\n", {"unknown key '[system] listen'"});
  expect_refused("[log]\nfile = \"/x\"\n", {"unknown key '[log] file'"});
  expect_refused("[metrics]\nport = 1\n", {"unknown key '[metrics] port'"});
  expect_refused("[daemon.extra]\nx = 1\n", {"unknown key '[daemon] extra'"});
}

TEST(ManagerConfig, WrongTypesNamed) {
  expect_refused("[daemon]\nthreads_number = \"4\"\n", {"[daemon] threads_number: expected an integer"});
  expect_refused("[daemon]\nthreads_number = 4.0\n", {"[daemon] threads_number: expected an integer"});
  expect_refused("[daemon]\nrecover_attempts = true\n", {"[daemon] recover_attempts: expected an integer"});
  expect_refused("[daemon]\nhot_standby = \"yes\"\n", {"[daemon] hot_standby: expected a boolean"});
  expect_refused("[daemon]\nnydusd_path = 1\n", {"[daemon] nydusd_path: expected a string"});
  expect_refused("[daemon]\nrecover_policy = 1\n", {"[daemon] recover_policy: expected a string"});
  expect_refused("[daemon]\nfailover_policy = []\n", {"[daemon] failover_policy: expected a string"});
  expect_refused("[daemon]\nfs_driver = 2\n", {"[daemon] fs_driver: expected a string"});
  expect_refused("[system]\nenable = 1\n", {"[system] enable: expected a boolean"});
  expect_refused("[system]\naddress = 1\n", {"[system] address: expected a string"});
  expect_refused("[log]\nlevel = 3\n", {"[log] level: expected a string"});
  expect_refused("[log]\ndir = false\n", {"[log] dir: expected a string"});
  expect_refused("[metrics]\naddress = 9100\n", {"[metrics] address: expected a string"});
  expect_refused("root = 1\n", {"root: expected a string"});
  expect_refused("daemon_mode = 1\n", {"daemon_mode: expected a string"});
  expect_refused("daemon = 1\n", {"[daemon]: expected a table"});
  expect_refused("[[system]]\nenable = true\n", {"[system]: expected a table"});
  auto r = parse_config("version = \"1\"\n", "t");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("version: expected an integer"));
}

TEST(ManagerConfig, ImpossibleValuesNamed) {
  expect_refused("root = \"var/lib/ferry\"\n", {"root", "absolute"});
  expect_refused("root = \"\"\n", {"root", "absolute"});
  expect_refused("daemon_mode = \"pooled\"\n", {"daemon_mode", "dedicated, shared", "\"pooled\""});
  expect_refused("[daemon]\nnydusd_path = \"bin/ferryd\"\n", {"[daemon] nydusd_path", "absolute"});
  expect_refused("[daemon]\nrecover_policy = \"sometimes\"\n",
                 {"[daemon] recover_policy: expected one of none, restart, failover, got \"sometimes\""});
  expect_refused("[daemon]\nfailover_policy = \"flush\"\n", {"[daemon] failover_policy", "none, resend"});
  expect_refused("[daemon]\nthreads_number = 0\n", {"[daemon] threads_number", "between 1 and 256"});
  expect_refused("[daemon]\nthreads_number = 257\n", {"[daemon] threads_number", "257"});
  expect_refused("[daemon]\nthreads_number = -1\n", {"[daemon] threads_number"});
  expect_refused("[daemon]\nthreads_number = 4294967297\n", {"[daemon] threads_number"});
  expect_refused("[daemon]\nrecover_attempts = 0\n", {"[daemon] recover_attempts", "between 1 and 100"});
  expect_refused("[daemon]\nrecover_attempts = 101\n", {"[daemon] recover_attempts"});
  expect_refused("[daemon]\nfs_driver = \"fscache\"\n", {"[daemon] fs_driver", "fscache is not supported"});
  expect_refused("[daemon]\nfs_driver = \"virtiofs\"\n", {"[daemon] fs_driver", "fusedev"});
  expect_refused("[system]\naddress = \"system.sock\"\n", {"[system] address", "absolute"});
  expect_refused("address = \"grpc.sock\"\n", {"address", "absolute"});
  expect_refused("address = 3\n", {"address: expected a string"});
  expect_refused("address = \"/" + std::string(120, 'a') + "\"\n", {"address", "unix socket"});
  expect_refused("[system]\naddress = \"\"\n", {"[system] address"});
  expect_refused("[system]\naddress = \"/" + std::string(120, 'a') + "\"\n",
                 {"[system] address", "unix socket"});
  expect_refused("[log]\nlevel = \"verbose\"\n", {"[log] level", "trace, debug, info, warn, error, off"});
  expect_refused("[log]\ndir = \"logs\"\n", {"[log] dir", "absolute"});
  for (const char* a : {"0.0.0.0:9100", "192.168.1.2:9100", ":9100", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
                        "127.0.0.1:65536", "localhost:-1", "[::]:9100", "unix:/run/m.sock"}) {
    expect_refused(std::string("[metrics]\naddress = \"") + a + "\"\n", {"[metrics] address"});
  }
  // A disabled system API may leave its address empty.
  EXPECT_TRUE(parse("[system]\nenable = false\naddress = \"\"\n").ok());
}

TEST(ManagerConfig, VersionRequired) {
  for (const char* text : {"", "   \n# only a comment\n", "root = \"/x\"\n"}) {
    auto r = parse_config(text, "empty.toml");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code, EINVAL);
    EXPECT_THAT(r.error().message, HasSubstr("version = 1 is required"));
    EXPECT_THAT(r.error().message, HasSubstr("empty.toml"));
  }
  auto r = parse_config("version = 2\n", "t");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("version"));
  EXPECT_THAT(r.error().message, HasSubstr("2"));
  EXPECT_FALSE(parse_config("version = 0\n", "t").ok());
}

TEST(ManagerConfig, SyntaxErrorsGiveLineAndColumn) {
  auto r = parse_config("version = 1\n[daemon]\nthreads_number = = 4\n", "/etc/ferry/config.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_THAT(r.error().message, HasSubstr("/etc/ferry/config.toml:3:"));
  auto dup = parse_config("version = 1\nroot = \"/a\"\nroot = \"/b\"\n", "dup.toml");
  ASSERT_FALSE(dup.ok());
  EXPECT_THAT(dup.error().message, HasSubstr("dup.toml:3:"));
}

TEST(ManagerConfig, ValidateChecksBuiltConfigs) {
  ManagerConfig c;
  EXPECT_TRUE(validate(c).ok());
  c.daemon.threads_number = 0;
  EXPECT_THAT(validate(c).error().message, HasSubstr("[daemon] threads_number"));
  c = ManagerConfig{};
  c.root = "relative";
  EXPECT_THAT(validate(c).error().message, HasSubstr("root"));
  c = ManagerConfig{};
  c.metrics.address = "10.0.0.1:80";
  EXPECT_THAT(validate(c).error().message, HasSubstr("[metrics] address"));
  c = ManagerConfig{};
  c.version = 3;
  EXPECT_THAT(validate(c).error().message, HasSubstr("version"));
  c = ManagerConfig{};
  c.daemon.recover_policy = static_cast<RecoverPolicy>(42);
  EXPECT_THAT(validate(c).error().message, HasSubstr("[daemon] recover_policy"));
  c = ManagerConfig{};
  c.daemon_mode = static_cast<DaemonMode>(42);
  EXPECT_THAT(validate(c).error().message, HasSubstr("daemon_mode"));
  c = ManagerConfig{};
  c.daemon.recover_attempts = 101;
  EXPECT_THAT(validate(c).error().message, HasSubstr("[daemon] recover_attempts"));
}

TEST(ManagerConfig, DefaultTomlRoundTrips) {
  const std::string text = default_config_toml();
  auto r = parse_config(text, "<embedded>");
  ASSERT_TRUE(r.ok()) << r.error().message;
  expect_same(*r, ManagerConfig{});
  // Every key is there, each with a comment line above it.
  for (const char* key : {"version", "root", "daemon_mode", "nydusd_path", "recover_policy",
                          "failover_policy", "threads_number", "fs_driver", "recover_attempts", "hot_standby",
                          "enable", "address", "level", "dir", "auth_file", "insecure_registries"}) {
    auto pos = text.find(std::string("\n") + key + " = ");
    ASSERT_NE(pos, std::string::npos) << key;
    auto prev_line_start = text.rfind('\n', pos - 1);
    ASSERT_NE(prev_line_start, std::string::npos) << key;
    EXPECT_EQ(text[prev_line_start + 1], '#') << key << " has no comment above it";
  }
}

TEST(ManagerConfig, LoadConfigNamesPath) {
  test::TempDir dir;
  auto missing = load_config(dir / "nope.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_THAT(missing.error().message, HasSubstr(dir / "nope.toml"));

  const std::string good = dir / "good.toml";
  std::ofstream(good) << "version = 1\n[daemon]\nthreads_number = 9\n";
  auto r = load_config(good);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->daemon.threads_number, 9u);

  const std::string bad = dir / "bad.toml";
  std::ofstream(bad) << "version = 1\n[daemon]\nthread_number = 9\n";
  auto b = load_config(bad);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.error().message, HasSubstr(bad));
  EXPECT_THAT(b.error().message, HasSubstr("unknown key '[daemon] thread_number'"));

  auto d = load_config(dir.path());
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.error().message, HasSubstr(dir.path()));

  if (::geteuid() != 0) GTEST_SKIP() << "EACCES check needs a non-root user";
}

// parse_config is fed user input: whatever the bytes, it answers with a Result.
TEST(ManagerConfig, GarbageNeverThrows) {
  std::mt19937 rng(12345);
  const std::string base = default_config_toml();
  const std::string alphabet = "[]{}=\"'#.,\n \t\\0123456789abcdefxyz-_+:\x01\xff\xc3";
  size_t refused = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    switch (i % 3) {
      case 0: {  // random bytes
        size_t n = rng() % 256;
        for (size_t k = 0; k < n; ++k) text += static_cast<char>(rng() & 0xff);
        break;
      }
      case 1: {  // random TOML-ish characters
        size_t n = rng() % 256;
        for (size_t k = 0; k < n; ++k) text += alphabet[rng() % alphabet.size()];
        break;
      }
      default: {  // the valid default with a few mutations
        text = base;
        for (int k = 0; k < 4; ++k) text[rng() % text.size()] = alphabet[rng() % alphabet.size()];
        break;
      }
    }
    Result<ManagerConfig> r = ManagerConfig{};
    EXPECT_NO_THROW(r = parse_config(text, "garbage")) << i;
    if (!r.ok()) {
      ++refused;
      EXPECT_EQ(r.error().code, EINVAL);
      EXPECT_FALSE(r.error().message.empty());
    }
  }
  EXPECT_GT(refused, 1000u);
}

TEST(EventKinds, NamesRoundTrip) {
  const std::pair<EventKind, const char*> all[] = {
      {EventKind::kStart, "start"},       {EventKind::kDeath, "death"},
      {EventKind::kFailover, "failover"}, {EventKind::kRestart, "restart"},
      {EventKind::kUpgrade, "upgrade"},   {EventKind::kRollback, "rollback"},
      {EventKind::kFailure, "failure"},   {EventKind::kReattach, "reattach"},
      {EventKind::kStop, "stop"},
  };
  for (const auto& [kind, name] : all) {
    EXPECT_EQ(to_string(kind), name);
    ASSERT_TRUE(parse_event_kind(name).has_value()) << name;
    EXPECT_EQ(*parse_event_kind(name), kind);
  }
  EXPECT_FALSE(parse_event_kind("Failover").has_value());
  EXPECT_FALSE(parse_event_kind("").has_value());
}

}  // namespace
}  // namespace ferry::manager
