// ferryd serving a Ferry image lazily from a registry (issue 16 points 1, 2, 6): the multi-layer
// image of ferryd_compressed_test plus a big incompressible file is unpacked by umoci (the
// oracle) and made by `ferry-image create --compressor zstd`; its blobs are pushed to Debian's
// docker-registry (tests/oci/registry_fixture.h) and ferryd mounts the bootstrap with a
// `registry` backend and no local blob at all. Checked: the tree equals umoci's over plain
// HTTP, Basic auth, Bearer tokens and TLS with a CA; listing the tree fetches nothing and loads
// no library; reading one small file fetches about that file (the registry's own log counts
// the bytes); a stopped registry gives EIO within the configured timeout while cached and
// metadata reads go on, and reads work again once it is back; credentials appear neither in
// ferryd's log nor in GET /api/v1/daemon; a bad config is one line naming the key, nothing
// mounted; read_stored_run is one Range GET. Through the blob cache, behind the kit's FaultProxy:
// every fault (5xx/404/401 answers, cut, flipped byte, refused, stalled, slow) is EIO by the
// deadline or the right bytes and never leaves a bad chunk cached, a second daemon on the cache
// fetches nothing cached, a stopped registry leaves cached data served; fs_prefetch fills the
// whole cache at the configured rate without holding up a reader.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/daemon_harness.h"
#include "e2e/erofs_fixture.h"
#include "e2e/feature_layers.h"
#include "e2e/fs_util.h"
#include "e2e/tree_compare.h"
#include "kit/fault_proxy.h"
#include "erofs/chunk_table.h"
#include "ipc/supervisor.h"
#include "oci/base64.h"
#include "oci/registry_client.h"
#include "oci/registry_fixture.h"
#include "remote/registry_fetcher.h"
#include "storage/local_file.h"
#include "storage/registry_chunk_reader.h"
#include "support/test_support.h"

namespace ferry::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using oci::test::RegistryConfig;
using oci::test::RegistryServer;

constexpr auto kToolDeadline = 120s;
constexpr size_t kBigSize = 24U << 20U;
constexpr const char* kRepo = "ferry/lazy";

std::string big_data() { return random_bytes(kBigSize, 77); }
std::string small_data() { return "a small file of a big image\n" + random_bytes(3000, 78); }

// The image, made once for every test: layers, umoci's unpack, the zstd Ferry image.
struct Built {
  ImageDir dir;
  nlohmann::json summary;
  std::string boot() const { return dir.path() + "/image.boot"; }
  std::string blobs() const { return dir.path() + "/blobs"; }
  std::string rootfs() const { return dir.path() + "/bundle/rootfs"; }
  uint64_t stored_bytes() const {
    uint64_t n = 0;
    for (const auto& b : summary["blobs"]) n += b["size"].get<uint64_t>();
    return n;
  }
};

// The registry log's GETs of blobs: how many, and the body bytes they sent.
struct BlobGets {
  size_t requests = 0;
  uint64_t bytes = 0;
};
BlobGets blob_gets(const std::string& log) {
  static const std::regex written(R"(http\.response\.written=(\d+))");
  BlobGets g;
  std::stringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("response completed") == std::string::npos || line.find("http.request.method=GET") == std::string::npos ||
        line.find("/blobs/sha256:") == std::string::npos)
      continue;
    ++g.requests;
    std::smatch m;
    if (std::regex_search(line, m, written)) g.bytes += std::stoull(m[1].str());
  }
  return g;
}

// The registry logs a request only after it has answered it: polls its log until `settled`
// holds of the blob GETs logged (at most 10 s), and returns what it last read.
BlobGets blob_gets_when(const RegistryServer& server, const std::function<bool(const BlobGets&)>& settled) {
  BlobGets g;
  (void)testkit::wait_until(
      [&] {
        g = blob_gets(server.log());
        return settled(g);
      },
      10s);
  return g;
}

bool maps_name(pid_t pid, const std::string& needle) {
  return test::read_file("/proc/" + std::to_string(pid) + "/maps").find(needle) != std::string::npos;
}

// The shared objects a process has mapped, by file name ("libc.so.6").
std::set<std::string> mapped_libraries(pid_t pid) {
  std::set<std::string> libs;
  std::stringstream lines(test::read_file("/proc/" + std::to_string(pid) + "/maps"));
  for (std::string line; std::getline(lines, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string name = fs::path(line.substr(slash)).filename().string();
    if (name.find(".so") != std::string::npos) libs.insert(name);
  }
  return libs;
}

const std::set<std::string> kLibcOnly = {"libc.so.6", "ld-linux-x86-64.so.2"};

class FerrydRegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!missing_prerequisite().empty() || test::run_shell("command -v umoci >/dev/null") != 0) return;
    built_ = std::make_unique<Built>();
    auto layers = feature_layers();
    layers.push_back({dir("big/"), file("big/random.bin", big_data()), file("big/small.txt", small_data())});
    std::vector<std::string> tars, gz, files;
    for (const auto& layer : layers) {
      tars.push_back(make_tar(layer));
      gz.push_back(make_tar(layer, TarCompression::kGzip));
      files.push_back(built_->dir.path() + "/l" + std::to_string(files.size() + 1) + ".tar.gz");
      write_bytes(files.back(), gz.back());
    }
    write_oci_layout(built_->dir.path() + "/oci", "latest", gz, tars);
    auto unpack = run_with_deadline({"/usr/bin/umoci", "unpack", "--image", built_->dir.path() + "/oci:latest",
                                     built_->dir.path() + "/bundle"},
                                    built_->dir.path(), kToolDeadline);
    ASSERT_EQ(unpack.exit_code(), 0) << unpack.describe();
    fs::create_directories(built_->blobs());
    std::vector<std::string> argv = {test::binary_path("ferry-image"), "create", "--bootstrap", built_->boot(),
                                     "--blob-dir", built_->blobs(), "--compressor", "zstd"};
    argv.insert(argv.end(), files.begin(), files.end());
    auto made = run_with_deadline(argv, built_->dir.path(), kToolDeadline);
    ASSERT_EQ(made.exit_code(), 0) << made.describe();
    built_->summary = nlohmann::json::parse(made.out);
  }
  static void TearDownTestSuite() { built_.reset(); }

  void SetUp() override {
    const std::string missing = missing_prerequisite();
    if (!missing.empty()) GTEST_SKIP() << missing;
    if (test::run_shell("command -v umoci >/dev/null") != 0) GTEST_SKIP() << "umoci is not installed";
    ASSERT_NE(built_, nullptr);
    ASSERT_FALSE(built_->summary.is_null()) << "the image was not built";
  }

  // Starts a registry and pushes the image's blobs into it.
  std::unique_ptr<RegistryServer> registry(const RegistryConfig& rc) {
    auto server = std::make_unique<RegistryServer>(rc);
    EXPECT_TRUE(server->ok());
    oci::RegistryOptions o;
    o.host = server->host();
    o.plain_http = !rc.tls;
    o.tls.ca_files = {server->ca_file()};
    if (!rc.tls) o.tls.ca_files.clear();
    if (rc.auth != RegistryConfig::Auth::kNone) {
      o.credentials.username = rc.user;
      o.credentials.password = rc.password;
    }
    auto client = oci::RegistryClient::create(o);
    EXPECT_TRUE(client.ok()) << client.error().message;
    for (const auto& b : built_->summary["blobs"]) {
      const std::string path = b["path"].get<std::string>();
      oci::Descriptor d;
      d.media_type = "application/octet-stream";
      d.digest = *oci::Digest::parse("sha256:" + fs::path(path).filename().string());
      d.size = static_cast<int64_t>(fs::file_size(path));
      auto pushed = (*client)->push_blob_file(kRepo, d, path);
      EXPECT_TRUE(pushed.ok()) << pushed.error().message;
    }
    return server;
  }

  static nlohmann::json registry_config(const RegistryServer& s, int timeout_s = 10) {
    nlohmann::json c = {{"scheme", s.config().tls ? "https" : "http"},
                        {"host", s.host()},
                        {"repo", kRepo},
                        {"timeout", timeout_s},
                        {"connect_timeout", 2},
                        {"retry_limit", 1}};
    if (s.config().auth != RegistryConfig::Auth::kNone)
      c["auth"] = oci::base64_encode(s.config().user + ":" + s.config().password);
    if (s.config().tls) c["ca_cert_files"] = {s.ca_file()};
    return {{"device", {{"backend", {{"type", "registry"}, {"config", c}}}}}};
  }

  // The registry config of `s` reached through `proxy`, with a blob cache in `cache_dir`.
  static nlohmann::json cached_config(const RegistryServer& s, const testkit::FaultProxy& proxy,
                                      const std::string& cache_dir, int timeout_s) {
    nlohmann::json c = registry_config(s, timeout_s);
    c["device"]["backend"]["config"]["host"] = proxy.host();
    c["device"]["cache"] = {{"type", "blobcache"}, {"config", {{"work_dir", cache_dir}}}};
    return c;
  }

  std::string write_config(const nlohmann::json& config) {
    const std::string path = work_.path() + "/ferryd.json";
    write_bytes(path, config.dump());
    return path;
  }

  std::unique_ptr<FerrydMount> mount(const nlohmann::json& config) {
    fs::create_directories(mnt());
    auto m = std::make_unique<FerrydMount>(mnt(), built_->boot(), write_config(config), log(),
                                           std::vector<std::string>{"--apisock", apisock(), "--log-level", "debug"});
    const std::string not_mounted = m->wait_mounted(20s);
    EXPECT_TRUE(not_mounted.empty()) << not_mounted;
    return m;
  }

  std::string mnt() const { return work_.path() + "/mnt"; }
  std::string log() const { return work_.path() + "/ferryd.log"; }
  std::string apisock() const { return work_.path() + "/api.sock"; }
  nlohmann::json metrics() const {
    std::string out;
    EXPECT_EQ(test::run_shell("curl -s --max-time 10 --unix-socket " + apisock() + " http://ferryd/api/v1/metrics", &out), 0);
    return nlohmann::json::parse(out, nullptr, false);
  }
  std::string api_daemon() const {
    std::string out;
    EXPECT_EQ(test::run_shell("curl -s --max-time 10 --unix-socket " + apisock() + " http://ferryd/api/v1/daemon", &out), 0);
    return out;
  }

  static std::unique_ptr<Built> built_;
  ImageDir work_;
};

std::unique_ptr<Built> FerrydRegistryTest::built_;

// Every regular file's bytes, every entry's metadata: umoci's unpack vs ferryd's mount.
void expect_tree_equal(const Built& built, const std::string& mnt, const std::string& ferryd_log) {
  const CompareResult result = compare_trees(built.rootfs(), mnt, CompareOptions::erofs_vs_source());
  EXPECT_TRUE(result.ok()) << result.report() << "\n" << test::read_file(ferryd_log);
  EXPECT_GT(result.entries, 400U);
  EXPECT_GT(result.bytes_compared, kBigSize);
  std::printf("[ e2e    ] %s\n", result.summary().c_str());
}

TEST_F(FerrydRegistryTest, PlainHttpListingFetchesNothingOneSmallFileFetchesLittleTheTreeIsUmocis) {
  auto server = registry({});
  auto ferryd = mount(registry_config(*server));
  const BlobGets before = blob_gets(server->log());

  // Metadata is the local bootstrap: a full listing with every inode's attributes fetches nothing,
  // and the daemon still has no library but libc mapped.
  size_t entries = 0;
  for (const auto& e : fs::recursive_directory_iterator(mnt())) {
    (void)e.symlink_status();
    ++entries;
  }
  EXPECT_GT(entries, 400U);
  EXPECT_EQ(blob_gets(server->log()).requests, before.requests);
  EXPECT_EQ(mapped_libraries(ferryd->pid()), kLibcOnly) << "a library is loaded before any fetch";

  // One small file of a >24 MiB image: a fetch of about its own (compressed) chunk.
  std::string text;
  ASSERT_TRUE(read_text_file(mnt() + "/big/small.txt", &text));
  EXPECT_EQ(text, small_data());
  const BlobGets after = blob_gets_when(*server, [&](const BlobGets& g) { return g.requests > before.requests; });
  const uint64_t fetched = after.bytes - before.bytes;
  std::printf("[ e2e    ] one %zu-byte file of an image of %llu stored bytes: %zu GETs, %llu bytes fetched\n",
              text.size(), static_cast<unsigned long long>(built_->stored_bytes()), after.requests - before.requests,
              static_cast<unsigned long long>(fetched));
  EXPECT_GT(fetched, 0U);
  EXPECT_LE(fetched, 64U * 1024U) << "fetched far more than the file";
  EXPECT_TRUE(maps_name(ferryd->pid(), "ferry-registry.so")) << "the first fetch loads the module";
  EXPECT_TRUE(maps_name(ferryd->pid(), "libcurl"));
  const auto first = metrics();
  uint64_t first_us = 0;
  for (const auto& [digest, b] : first["remote_blobs"].items()) first_us += b["latency_us_total"].get<uint64_t>();

  expect_tree_equal(*built_, mnt(), log());
  // Everything was read once, compressed: about the blobs' size (no whole-blob refetches).
  const uint64_t all =
      blob_gets_when(*server, [&](const BlobGets& g) { return g.bytes - before.bytes >= built_->stored_bytes() / 2; })
          .bytes -
      before.bytes;
  std::printf("[ e2e    ] whole tree: %llu bytes fetched for %llu stored\n", static_cast<unsigned long long>(all),
              static_cast<unsigned long long>(built_->stored_bytes()));
  EXPECT_GE(all, built_->stored_bytes() / 2);

  // The daemon's metrics count the same bytes, per blob.
  const auto all_metrics = metrics();
  ASSERT_TRUE(all_metrics.contains("remote_blobs")) << all_metrics.dump();
  uint64_t bytes = 0, requests = 0, failures = 0, total_us = 0;
  for (const auto& [digest, b] : all_metrics["remote_blobs"].items()) {
    total_us += b["latency_us_total"].get<uint64_t>();
    EXPECT_EQ(b["source"].get<std::string>(), "registry " + server->host() + ", repository " + kRepo + ", blob " + digest);
    bytes += b["bytes_fetched"].get<uint64_t>();
    requests += b["requests"].get<uint64_t>();
    failures += b["failures"].get<uint64_t>();
    uint64_t in_histogram = 0;
    for (const auto& bucket : b["latency_histogram"]) in_histogram += bucket["count"].get<uint64_t>();
    EXPECT_EQ(in_histogram, b["requests"].get<uint64_t>() - b["failures"].get<uint64_t>());
  }
  EXPECT_EQ(all_metrics["remote_blobs"].size(), built_->summary["blobs"].size());
  std::printf("[ e2e    ] first fetch (loads the module, makes the client, connects): %llu us; "
              "the other %llu fetches: %llu us on average\n",
              static_cast<unsigned long long>(first_us), static_cast<unsigned long long>(requests - 1),
              static_cast<unsigned long long>(requests > 1 ? (total_us - first_us) / (requests - 1) : 0));
  const BlobGets logged = blob_gets_when(*server, [&](const BlobGets& g) { return g.requests >= requests; });
  EXPECT_EQ(bytes, logged.bytes);
  EXPECT_EQ(requests, logged.requests);
  EXPECT_EQ(failures, 0U);
}

// ferryd's link line: libc only (its start-up is inside a failover blackout); and a localfs image
// maps nothing else while it is served.
TEST_F(FerrydRegistryTest, FerrydNeedsLibcOnlyAndALocalfsImageLoadsNoModule) {
  std::string out;
  ASSERT_EQ(test::run_shell("readelf -d " + test::binary_path("ferryd") + " | grep NEEDED", &out), 0) << out;
  std::set<std::string> needed;
  static const std::regex lib(R"(\[([^\]]+)\])");
  for (std::sregex_iterator it(out.begin(), out.end(), lib), end; it != end; ++it) needed.insert((*it)[1].str());
  EXPECT_EQ(needed, kLibcOnly) << out;
  write_bytes(work_.path() + "/local.json", backend_config_json("localfs", "dir", built_->blobs()));
  fs::create_directories(mnt());
  FerrydMount ferryd(mnt(), built_->boot(), work_.path() + "/local.json", log());
  const std::string not_mounted = ferryd.wait_mounted(20s);
  ASSERT_TRUE(not_mounted.empty()) << not_mounted;
  std::string text;
  ASSERT_TRUE(read_text_file(mnt() + "/big/small.txt", &text));
  EXPECT_EQ(text, small_data());
  EXPECT_EQ(mapped_libraries(ferryd.pid()), kLibcOnly);
}

struct AuthCase {
  const char* name;
  RegistryConfig::Auth auth;
  bool tls;
};

void PrintTo(const AuthCase& c, std::ostream* os) { *os << c.name; }

class FerrydRegistryAuthTest : public FerrydRegistryTest, public ::testing::WithParamInterface<AuthCase> {};

TEST_P(FerrydRegistryAuthTest, ServesTheTreeAndNoCredentialReachesTheLogOrTheApi) {
  RegistryConfig rc;
  rc.auth = GetParam().auth;
  rc.tls = GetParam().tls;
  auto server = registry(rc);
  const nlohmann::json config = registry_config(*server);
  auto ferryd = mount(config);
  expect_tree_equal(*built_, mnt(), log());
  EXPECT_GT(blob_gets_when(*server, [](const BlobGets& g) { return g.requests > 0; }).requests, 0U);
  const std::string api = api_daemon();
  EXPECT_NE(api.find("\"state\""), std::string::npos) << api;
  const std::string daemon_log = test::read_file(log());
  for (const std::string& secret : {rc.password, oci::base64_encode(rc.user + ":" + rc.password)}) {
    EXPECT_EQ(api.find(secret), std::string::npos) << api;
    EXPECT_EQ(daemon_log.find(secret), std::string::npos) << daemon_log;
  }
}

INSTANTIATE_TEST_SUITE_P(Auth, FerrydRegistryAuthTest,
                         ::testing::Values(AuthCase{"Basic", RegistryConfig::Auth::kBasic, false},
                                           AuthCase{"BearerToken", RegistryConfig::Auth::kToken, false},
                                           AuthCase{"TlsWithCa", RegistryConfig::Auth::kNone, true}),
                         [](const auto& p) { return std::string(p.param.name); });

TEST_F(FerrydRegistryTest, StoppedRegistryIsEioWithinTheTimeoutWhileOtherReadsGoOn) {
  auto server = registry({});
  constexpr int kTimeoutS = 3;
  auto ferryd = mount(registry_config(*server, kTimeoutS));
  std::string text;
  ASSERT_TRUE(read_text_file(mnt() + "/big/small.txt", &text));  // now in the page cache
  const std::string big = big_data();

  server->stop();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(direct_read(mnt() + "/big/random.bin", 5U << 20U), EIO);
  const auto took = std::chrono::steady_clock::now() - start;
  std::printf("[ e2e    ] a read with the registry down: EIO after %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  EXPECT_LT(took, std::chrono::seconds(kTimeoutS + 2));
  // Metadata and the page cache still serve.
  EXPECT_GT(std::distance(fs::recursive_directory_iterator(mnt()), fs::recursive_directory_iterator()), 400);
  std::string again;
  ASSERT_TRUE(read_text_file(mnt() + "/big/small.txt", &again));
  EXPECT_EQ(again, small_data());
  EXPECT_NE(test::read_file(log()).find("registry " + server->host()), std::string::npos)
      << "the failed read's log line names the registry: " << test::read_file(log());

  // Back: the same read is served, right bytes.
  ASSERT_TRUE(server->start_again());
  std::string data;
  EXPECT_EQ(direct_read(mnt() + "/big/random.bin", 5U << 20U, &data), 0);
  EXPECT_EQ(data, big.substr(5U << 20U, 4096));
}

// A registry that accepts the request and never answers: the read is EIO once the configured
// timeout (retries included) has passed, not later, and the daemon goes on serving metadata.
TEST_F(FerrydRegistryTest, ARegistryThatNeverAnswersIsEioAtTheDeadline) {
  oci::test::ScriptedHttpServer silent;
  for (int i = 0; i < 8; ++i) silent.push({.head = "", .body = "", .hang = true});
  nlohmann::json config = {{"device",
                            {{"backend",
                              {{"type", "registry"},
                               {"config",
                                {{"scheme", "http"},
                                 {"host", silent.host()},
                                 {"repo", kRepo},
                                 {"timeout", 2},
                                 {"retry_limit", 3}}}}}}}};
  auto ferryd = mount(config);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(direct_read(mnt() + "/big/random.bin", 0), EIO);
  const auto took = std::chrono::steady_clock::now() - start;
  std::printf("[ e2e    ] a read from a registry that never answers: EIO after %lld ms (timeout 2 s)\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  EXPECT_GE(took, 1500ms);
  EXPECT_LT(took, 4s);
  EXPECT_FALSE(silent.requests().empty());
  EXPECT_GT(std::distance(fs::recursive_directory_iterator(mnt()), fs::recursive_directory_iterator()), 400);
}

TEST_F(FerrydRegistryTest, BadConfigsAreOneLineNamingTheKeyAndMountNothing) {
  auto server = registry({});
  nlohmann::json base = registry_config(*server);
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    std::string key;
  };
  const std::vector<Case> cases = {
      {[](nlohmann::json& c) { c["device"]["backend"]["config"].erase("host"); }, "device.backend.config.host"},
      {[](nlohmann::json& c) { c["device"]["backend"]["config"].erase("repo"); }, "device.backend.config.repo"},
      {[](nlohmann::json& c) { c["device"]["backend"]["type"] = "oss"; }, "device.backend.type"},
      {[](nlohmann::json& c) { c["device"]["cache"] = {{"type", "fscache"}}; }, "device.cache.type"},
      {[](nlohmann::json& c) { c["device"]["backend"]["config"]["ca_cert_files"] = {"/nonexistent/ca.pem"}; },
       "device.backend.config.ca_cert_files[0]"},
      {[](nlohmann::json& c) { c["device"]["backend"]["config"]["timeout"] = "10"; }, "device.backend.config.timeout"},
  };
  for (const auto& c : cases) {
    nlohmann::json config = base;
    c.edit(config);
    fs::create_directories(mnt());
    auto run = run_with_deadline({test::binary_path("ferryd"), "fuse", "--mountpoint", mnt(), "--bootstrap",
                                  built_->boot(), "--config", write_config(config)},
                                 work_.path(), 30s);
    EXPECT_EQ(run.exit_code(), 2) << c.key << ": " << run.describe();
    EXPECT_NE(run.err.find(c.key), std::string::npos) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_FALSE(test::is_mounted(mnt(), "fuse"));
  }
}

// A takeover hands the registry backend (credentials included: over the supervisor's 0600
// unix socket, never a file) to the successor, which starts with libc only and fetches what
// its predecessor had not: the predecessor is killed (SIGKILL) after one fetch.
TEST_F(FerrydRegistryTest, TheSuccessorOfAKilledDaemonFetchesWithTheSameBackend) {
  RegistryConfig rc;
  rc.auth = RegistryConfig::Auth::kBasic;
  auto server = registry(rc);
  auto sup = ipc::Supervisor::listen(work_.path() + "/sup.sock");
  ASSERT_TRUE(sup.ok()) << sup.error().message;
  fs::create_directories(mnt());
  test::MountGuard guard(mnt());
  const std::string config = write_config(registry_config(*server));
  auto start = [&](int gen, bool upgrade) {
    std::vector<std::string> args = {"--mountpoint", mnt(), "--bootstrap", built_->boot(), "--config", config,
                                     "--apisock", work_.path() + "/api-" + std::to_string(gen) + ".sock", "--id",
                                     "reg-1", "--supervisor", work_.path() + "/sup.sock"};
    if (upgrade) args.emplace_back("--upgrade");
    return test::Ferryd::start(args, work_.path() + "/ferryd-" + std::to_string(gen) + ".log");
  };
  const std::string sock0 = work_.path() + "/api-0.sock", sock1 = work_.path() + "/api-1.sock";
  auto first = start(0, false);
  ASSERT_TRUE(test::wait_state(sock0, "RUNNING", 20s)) << test::read_file(work_.path() + "/ferryd-0.log");
  std::string text;
  ASSERT_TRUE(read_text_file(mnt() + "/big/small.txt", &text));
  EXPECT_EQ(text, small_data());
  auto saved = (*sup)->receive([&] { return test::api_ok(sock0, "PUT", "/api/v1/daemon/fuse/sendfd"); }, 10s);
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  first.process().kill_and_reap();

  auto second = start(1, true);
  ASSERT_TRUE(test::wait_state(sock1, "INIT", 20s)) << test::read_file(work_.path() + "/ferryd-1.log");
  auto taken = (*sup)->send([&] { return test::api_ok(sock1, "PUT", "/api/v1/daemon/fuse/takeover"); }, 10s);
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  ASSERT_TRUE(test::api_ok(sock1, "PUT", "/api/v1/daemon/start").ok());
  ASSERT_TRUE(test::wait_state(sock1, "RUNNING", 10s));
  EXPECT_EQ(mapped_libraries(second.pid()), kLibcOnly) << "the successor starts with libc only";
  std::string data;
  const BlobGets before = blob_gets(server->log());
  EXPECT_EQ(direct_read(mnt() + "/big/random.bin", 9U << 20U, &data), 0)
      << test::read_file(work_.path() + "/ferryd-1.log");
  EXPECT_EQ(data, big_data().substr(9U << 20U, 4096));
  EXPECT_GT(blob_gets_when(*server, [&](const BlobGets& g) { return g.requests > before.requests; }).requests,
            before.requests)
      << "the successor fetched it";
  EXPECT_TRUE(maps_name(second.pid(), "ferry-registry.so"));
  expect_tree_equal(*built_, mnt(), work_.path() + "/ferryd-1.log");
  second.process().kill_and_reap();
}

// The fetcher and reader of a blob, straight (the module of this build tree): a run of
// consecutive chunks is one Range GET with exactly their bytes; a missing module names its path.
TEST_F(FerrydRegistryTest, AStoredRunIsOneRangeGetAndAMissingModuleNamesItsPath) {
  auto server = registry({});
  auto meta = storage::LocalFile::open(built_->boot(), true);
  ASSERT_TRUE(meta.ok());
  auto table = erofs::load_chunk_table(**meta);
  ASSERT_TRUE(table.ok() && table->has_value());
  // The blob with the most chunks (the big file's).
  const erofs::BlobInfo* blob = &(**table).blobs[0];
  for (const auto& b : (**table).blobs) blob = b.chunk_count > blob->chunk_count ? &b : blob;
  ASSERT_GE(blob->chunk_count, 4U);
  const auto chunks = (**table).chunks_of(blob->device_id).subspan(1, 3);

  remote::RegistryConfig rc;
  rc.scheme = "http";
  rc.host = server->host();
  rc.repo = kRepo;
  auto fetcher = remote::RegistryFetcher::create(rc, FERRY_BINARY_DIR "/lib/ferry/ferry-registry.so");
  ASSERT_TRUE(fetcher.ok()) << fetcher.error().message;
  const std::string hex = erofs::digest_hex(blob->digest);
  storage::RegistryChunkReader reader(*fetcher, "sha256:" + hex, blob->blob_size);

  uint64_t n = 0;
  for (const auto& c : chunks) n += c.stored_size;
  std::string got(n, '\0');
  const BlobGets before = blob_gets(server->log());
  Status st = reader.read_stored_run(blob->first_chunk + 1, chunks,
                                     std::as_writable_bytes(std::span(got.data(), got.size())));
  ASSERT_TRUE(st.ok()) << st.error().message;
  const BlobGets after = blob_gets_when(*server, [&](const BlobGets& g) { return g.requests > before.requests; });
  EXPECT_EQ(after.requests - before.requests, 1U);
  EXPECT_EQ(after.bytes - before.bytes, n);
  EXPECT_EQ(reader.stats().requests.load(), 1U);
  EXPECT_EQ(reader.stats().bytes.load(), n);
  std::string want;
  ASSERT_TRUE(read_text_file(built_->blobs() + "/" + hex, &want));
  EXPECT_EQ(got, want.substr(chunks[0].blob_offset, n));

  auto missing = remote::RegistryFetcher::create(rc, work_.path() + "/no/ferry-registry.so");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find(work_.path() + "/no/ferry-registry.so"), std::string::npos)
      << missing.error().message;
}

// ---- through the blob cache, behind the kit's FaultProxy (issue 16 points 3, 4, 6) ----------

int port_of(const RegistryServer& s) { return std::stoi(s.host().substr(s.host().rfind(':') + 1)); }

// Every fault the proxy makes, each on a chunk of its own of the incompressible file: the read
// is EIO by the deadline or the right bytes, never wrong bytes; once the fault is gone the same
// read gives the right bytes (no bad chunk was cached), and a second daemon on the same cache
// fetches none of what the first one cached.
TEST_F(FerrydRegistryTest, EveryRegistryFaultIsEioOrTheRightBytesAndNoBadChunkIsCached) {
  auto server = registry({});
  testkit::FaultProxy proxy(port_of(*server));
  ASSERT_TRUE(proxy.ok());
  constexpr int kTimeoutS = 2;
  const std::string cache = work_.path() + "/cache";
  auto ferryd = mount(cached_config(*server, proxy, cache, kTimeoutS));
  const std::string big = big_data();
  const std::string path = mnt() + "/big/random.bin";
  struct Case {
    const char* what;
    testkit::Fault fault;
  };
  const std::vector<Case> cases = {
      {"HTTP 500", testkit::Fault::answer(500, "/blobs/")},
      {"HTTP 404", testkit::Fault::answer(404, "/blobs/")},
      {"HTTP 401", testkit::Fault::answer(401, "/blobs/")},
      {"a connection cut mid-answer", testkit::Fault::cut_after(300, "/blobs/")},
      {"a flipped byte", testkit::Fault::corrupt_body_at(1000, "/blobs/")},
      {"a refused connection", testkit::Fault::refuse("/blobs/")},
      {"an answer that never comes", testkit::Fault::stall("/blobs/")},
      {"a slow answer", testkit::Fault::delay_by(300ms, "/blobs/")},
  };
  uint64_t chunk = 1;
  for (const Case& c : cases) {
    const uint64_t offset = (chunk++ << 20U) + 8192;
    proxy.set_fault(c.fault);
    std::string data;
    const auto start = std::chrono::steady_clock::now();
    const int err = direct_read(path, offset, &data);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(err == EIO || (err == 0 && data == big.substr(offset, 4096)))
        << c.what << ": errno " << err << (err == 0 ? ", WRONG BYTES" : "");
    EXPECT_LT(took, std::chrono::seconds(kTimeoutS + 3)) << c.what;
    proxy.set_fault(testkit::Fault::none());
    proxy.release_stalls();
    data.clear();
    EXPECT_EQ(direct_read(path, offset, &data), 0) << c.what << ": not served once the fault is gone";
    EXPECT_EQ(data, big.substr(offset, 4096)) << c.what << ": wrong bytes after the fault";
  }
  EXPECT_GE(proxy.faults_applied(), cases.size());

  // A second daemon over the same cache: what the first one cached is not fetched again.
  ferryd.reset();
  const uint64_t before = proxy.requests();
  auto again = mount(cached_config(*server, proxy, cache, kTimeoutS));
  for (uint64_t k = 1; k < chunk; ++k) {
    std::string data;
    const uint64_t offset = (k << 20U) + 8192;
    EXPECT_EQ(direct_read(path, offset, &data), 0);
    EXPECT_EQ(data, big.substr(offset, 4096));
  }
  EXPECT_EQ(proxy.requests(), before) << "a cached chunk was fetched again by the next daemon";
}

// The registry stopped while a daemon serves from its cache: cached chunks are served throughout,
// missing ones are EIO by the deadline, and served again once the registry is back.
TEST_F(FerrydRegistryTest, WithTheRegistryDownCachedDataIsServedAndMissingDataAgainOnceItIsBack) {
  auto server = registry({});
  testkit::FaultProxy proxy(port_of(*server));
  const std::string cache = work_.path() + "/cache";
  auto ferryd = mount(cached_config(*server, proxy, cache, 2));
  const std::string big = big_data();
  const std::string path = mnt() + "/big/random.bin";
  for (uint64_t k = 0; k < 4; ++k) ASSERT_EQ(direct_read(path, k << 20U), 0);
  server->stop();
  for (uint64_t k = 0; k < 4; ++k) {
    std::string data;
    EXPECT_EQ(direct_read(path, (k << 20U) + 4096, &data), 0) << "cached chunk " << k;
    EXPECT_EQ(data, big.substr((k << 20U) + 4096, 4096));
  }
  EXPECT_EQ(direct_read(path, 10U << 20U), EIO);
  ASSERT_TRUE(server->start_again());
  std::string data;
  EXPECT_EQ(direct_read(path, 10U << 20U, &data), 0);
  EXPECT_EQ(data, big.substr(10U << 20U, 4096));
}

// fs_prefetch: the whole image lands in the cache in the background at the configured rate,
// a reader of a chunk prefetch has not reached does not wait for it, progress is in the
// metrics, and once it is done reading the whole tree fetches nothing.
TEST_F(FerrydRegistryTest, PrefetchFillsTheCacheBehindReadersAndThenNothingIsFetched) {
  auto server = registry({});
  testkit::FaultProxy proxy(port_of(*server));
  const std::string cache = work_.path() + "/cache";
  nlohmann::json config = cached_config(*server, proxy, cache, 10);
  const uint64_t rate = 8U << 20U;  // the 24 MiB file alone takes 3 s
  config["fs_prefetch"] = {{"enable", true}, {"threads_count", 2}, {"bandwidth_rate", rate}};
  auto ferryd = mount(config);
  const std::string big = big_data();
  // The last chunk of the big file: prefetch (blob order, at 8 MiB/s) is seconds away from it.
  const uint64_t far = kBigSize - 4096;
  std::string data;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(direct_read(mnt() + "/big/random.bin", far, &data), 0);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(data, big.substr(far, 4096));
  EXPECT_LT(took, 1500ms) << "a reader waited behind prefetch";

  auto metrics = [&] {
    std::string out;
    EXPECT_EQ(test::run_shell("curl -s --max-time 10 --unix-socket " + apisock() + " http://ferryd/api/v1/metrics", &out), 0);
    return nlohmann::json::parse(out, nullptr, false);
  };
  ASSERT_TRUE(testkit::wait_until(
      [&] {
        auto m = metrics();
        return m.contains("prefetch") && !m["prefetch"].empty() && m["prefetch"][0]["finished"].get<bool>();
      },
      60s))
      << metrics().dump();
  const auto m = metrics();
  EXPECT_EQ(m["prefetch"][0]["pieces_failed"].get<uint64_t>(), 0U) << m.dump();
  EXPECT_EQ(m["prefetch"][0]["chunks_done"], m["prefetch"][0]["chunks_total"]);
  ASSERT_TRUE(m.contains("blob_caches")) << m.dump();
  for (const auto& [file, c] : m["blob_caches"].items()) EXPECT_EQ(c["chunks_present"], c["chunks_total"]) << file;
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(built_->stored_bytes() * 1000 / rate / 2)) << "the rate was not kept";

  const uint64_t before = proxy.requests();
  expect_tree_equal(*built_, mnt(), log());
  EXPECT_EQ(proxy.requests(), before) << "the prefetched image fetched again";
}

}  // namespace
}  // namespace ferry::e2e
