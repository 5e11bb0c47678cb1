// RegistryClient end to end against Debian's docker-registry, with skopeo as the oracle that
// what it pushes is a valid image and that it reads what others push.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <fstream>
#include <thread>
#include <sstream>

#include "oci/base64.h"
#include "oci/layout.h"
#include "oci/media_types.h"
#include "oci/registry_client.h"
#include "oci/registry_fixture.h"
#include "oci/test_image.h"

namespace ferry::oci {
namespace {

using test::RegistryConfig;
using test::RegistryServer;
using test::TempDir;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::unique_ptr<RegistryClient> client_for(const RegistryServer& server, Credentials creds = {}) {
  RegistryOptions o;
  o.host = server.host();
  o.plain_http = !server.config().tls;
  if (server.config().tls) o.tls.ca_files = {server.ca_file()};
  o.credentials = std::move(creds);
  o.timeout = std::chrono::seconds(20);
  auto c = RegistryClient::create(std::move(o));
  EXPECT_TRUE(c.ok()) << c.error().message;
  return c.ok() ? std::move(c).value() : nullptr;
}

// Pushes the image's blobs and manifest under repo:tag.
void push_image(const RegistryClient& c, const std::string& repo, const std::string& tag, const test::TestImage& img) {
  auto layer = c.push_blob(repo, img.layer_desc, img.layer);
  ASSERT_TRUE(layer.ok()) << layer.error().message;
  auto config = c.push_blob(repo, img.config_desc, img.config);
  ASSERT_TRUE(config.ok()) << config.error().message;
  auto m = c.put_manifest(repo, tag, media_type::kOciManifest, img.manifest_bytes);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(*m, Digest::of(img.manifest_bytes));
}

RegistryConfig basic_config() {
  RegistryConfig c;
  c.auth = RegistryConfig::Auth::kBasic;
  return c;
}

RegistryConfig token_config(bool tls, int expires_in) {
  RegistryConfig c;
  c.auth = RegistryConfig::Auth::kToken;
  c.tls = tls;
  c.token_expires_in = expires_in;
  return c;
}

// Captures what the library logs (debug level) for the credential checks.
class LogCapture {
 public:
  LogCapture() : old_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(old_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string text() const { return stream_.str(); }

 private:
  std::shared_ptr<spdlog::logger> old_;
  std::ostringstream stream_;
};

TEST(RegistryE2E, PushesAndReadsBackBlobsManifestsAndRanges) {
  RegistryServer server;
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "a");
  auto c = client_for(server);
  ASSERT_TRUE(c);
  const std::string repo = "ferry/test";

  auto absent = c->head_blob(repo, img.layer_desc.digest);
  ASSERT_TRUE(absent.ok()) << absent.error().message;
  EXPECT_FALSE(absent->has_value());
  auto pushed = c->push_blob(repo, img.layer_desc, img.layer);
  ASSERT_TRUE(pushed.ok()) << pushed.error().message;
  EXPECT_TRUE(*pushed);
  const size_t posts = count(server.log(), "http.request.method=POST");
  EXPECT_EQ(posts, 1U) << server.log();
  // HEAD says it exists: the second push uploads nothing.
  auto again = c->push_blob(repo, img.layer_desc, img.layer);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_FALSE(*again);
  EXPECT_EQ(count(server.log(), "http.request.method=POST"), posts);
  auto size = c->head_blob(repo, img.layer_desc.digest);
  ASSERT_TRUE(size.ok() && size->has_value());
  EXPECT_EQ(**size, img.layer_desc.size);

  // The config from a file (the other upload path).
  ASSERT_EQ(ferry::test::run_shell("printf '%s' '" + img.config + "' > " + tmp / "config.json"), 0);
  auto config = c->push_blob_file(repo, img.config_desc, tmp / "config.json");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_TRUE(*config);
  auto digest = c->put_manifest(repo, "v1", media_type::kOciManifest, img.manifest_bytes);
  ASSERT_TRUE(digest.ok()) << digest.error().message;

  auto by_tag = c->get_manifest(repo, "v1");
  ASSERT_TRUE(by_tag.ok()) << by_tag.error().message;
  EXPECT_EQ(by_tag->bytes, img.manifest_bytes);
  EXPECT_EQ(by_tag->media_type, media_type::kOciManifest);
  EXPECT_EQ(by_tag->digest, *digest);
  auto by_digest = c->get_manifest(repo, digest->str());
  ASSERT_TRUE(by_digest.ok()) << by_digest.error().message;
  EXPECT_EQ(by_digest->bytes, img.manifest_bytes);
  auto head = c->head_manifest(repo, "v1");
  ASSERT_TRUE(head.ok()) << head.error().message;
  EXPECT_EQ(head->digest, *digest);
  EXPECT_EQ(head->size, static_cast<int64_t>(img.manifest_bytes.size()));
  EXPECT_EQ(head->media_type, media_type::kOciManifest);
  auto parsed = parse_manifest(by_tag->bytes, by_tag->media_type);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(std::get<ImageManifest>(*parsed).layers, img.manifest.layers);

  auto blob = c->get_blob(repo, img.layer_desc, 1 << 20);
  ASSERT_TRUE(blob.ok()) << blob.error().message;
  EXPECT_EQ(*blob, img.layer);
  ASSERT_TRUE(c->get_blob_to_file(repo, img.layer_desc, tmp / "layer.out").ok());
  EXPECT_EQ(ferry::test::read_file(tmp / "layer.out"), img.layer);
  auto too_small = c->get_blob(repo, img.layer_desc, 1000);
  ASSERT_FALSE(too_small.ok());
  EXPECT_EQ(too_small.error().code, EMSGSIZE);

  // Range reads: the start, the middle, the very last byte; past the end is ERANGE.
  const uint64_t n = img.layer.size();
  for (const auto& [off, len] : {std::pair<uint64_t, size_t>{0, 1}, {1000, 70000}, {n - 1, 1}, {0, n}}) {
    std::vector<std::byte> out(len);
    auto st = c->read_blob_range(repo, img.layer_desc.digest, off, out);
    ASSERT_TRUE(st.ok()) << off << "+" << len << ": " << st.error().message;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), len), img.layer.substr(off, len)) << off;
  }
  EXPECT_GE(count(server.log(), "http.response.status=206"), 3U);
  std::vector<std::byte> past(10);
  auto beyond = c->read_blob_range(repo, img.layer_desc.digest, n - 5, past);
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().code, ERANGE) << beyond.error().message;
}

TEST(RegistryE2E, ErrorsNameRegistryRepositoryAndDigest) {
  RegistryServer server;
  ASSERT_TRUE(server.ok());
  auto c = client_for(server);
  const Digest d = Digest::of(std::string_view("nothing here"));
  Descriptor desc{"x", d, 12, {}, {}, {}};
  auto blob = c->get_blob("ns/app", desc, 100);
  ASSERT_FALSE(blob.ok());
  EXPECT_EQ(blob.error().code, ENOENT);
  for (const auto& part : {"registry " + server.host(), std::string("repository ns/app"), d.str(), std::string("404")}) {
    EXPECT_NE(blob.error().message.find(part), std::string::npos) << blob.error().message;
  }
  auto manifest = c->get_manifest("ns/app", "v9");
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.error().code, ENOENT);
  EXPECT_NE(manifest.error().message.find("manifest v9"), std::string::npos) << manifest.error().message;
  EXPECT_NE(manifest.error().message.find("MANIFEST_UNKNOWN"), std::string::npos) << manifest.error().message;
  // A manifest whose blobs the registry lacks is refused, with the registry's reason.
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "missing");
  auto put = c->put_manifest("ns/app", "v1", media_type::kOciManifest, img.manifest_bytes);
  ASSERT_FALSE(put.ok());
  EXPECT_NE(put.error().message.find("BLOB_UNKNOWN"), std::string::npos) << put.error().message;
  // A descriptor that lies about the size is refused before anything is sent.
  Descriptor wrong = img.layer_desc;
  wrong.size += 1;
  EXPECT_EQ(c->push_blob("ns/app", wrong, img.layer).error().code, EINVAL);
}

TEST(RegistryE2E, SkopeoReadsWhatWePushAndWeReadWhatSkopeoPushes) {
  RegistryServer server;
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "skopeo");
  auto c = client_for(server);
  push_image(*c, "ferry/ours", "v1", img);

  // skopeo pulls our image into a layout: it checks every digest on the way.
  std::string out;
  ASSERT_EQ(ferry::test::run_shell("skopeo copy --src-tls-verify=false docker://" + server.host() + "/ferry/ours:v1 oci:" +
                                 tmp / "pulled:v1 2>&1",
                             &out),
            0)
      << out;
  auto pulled = OciLayout::open(tmp / "pulled");
  ASSERT_TRUE(pulled.ok()) << pulled.error().message;
  auto top = pulled->resolve("v1");
  ASSERT_TRUE(top.ok()) << top.error().message;
  auto bytes = pulled->read_blob(*top, kMaxManifestSize);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  auto m = parse_manifest(*bytes, top->media_type);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const auto& manifest = std::get<ImageManifest>(*m);
  ASSERT_EQ(manifest.layers.size(), 1U);
  EXPECT_EQ(manifest.layers[0].digest, img.layer_desc.digest);
  EXPECT_EQ(manifest.config.digest, img.config_desc.digest);
  EXPECT_TRUE(pulled->verify_blob(manifest.layers[0]).ok());

  // The other way: a layout written by OciLayout, pushed by skopeo, read by us; once as OCI,
  // once converted by skopeo to Docker schema 2.
  auto layout = OciLayout::create(tmp / "ours");
  ASSERT_TRUE(layout.ok());
  ASSERT_TRUE(layout->write_blob(img.layer, img.layer_desc.media_type).ok());
  ASSERT_TRUE(layout->write_blob(img.config, img.config_desc.media_type).ok());
  auto mdesc = layout->write_blob(img.manifest_bytes, std::string(media_type::kOciManifest));
  ASSERT_TRUE(mdesc.ok());
  ASSERT_TRUE(layout->set_tag(*mdesc, "v2").ok());
  for (const auto& [repo, format, type] :
       {std::tuple<std::string, std::string, std::string_view>{"ferry/oci", "oci", media_type::kOciManifest},
        {"ferry/docker", "v2s2", media_type::kDockerManifest}}) {
    ASSERT_EQ(ferry::test::run_shell("skopeo copy --format " + format + " --dest-tls-verify=false oci:" + tmp / "ours:v2" +
                                   " docker://" + server.host() + "/" + repo + ":v2 2>&1",
                               &out),
              0)
        << out;
    auto fetched = c->get_manifest(repo, "v2");
    ASSERT_TRUE(fetched.ok()) << fetched.error().message;
    EXPECT_EQ(fetched->media_type, type);
    auto any = parse_manifest(fetched->bytes, fetched->media_type);
    ASSERT_TRUE(any.ok()) << any.error().message;
    const auto& theirs = std::get<ImageManifest>(*any);
    EXPECT_EQ(theirs.media_type, type);
    ASSERT_EQ(theirs.layers.size(), 1U);
    auto layer = c->get_blob(repo, theirs.layers[0], 1 << 20);
    ASSERT_TRUE(layer.ok()) << layer.error().message;
    EXPECT_EQ(*layer, img.layer);  // skopeo keeps the compressed bytes
    auto config = c->get_blob(repo, theirs.config, kMaxConfigSize);
    ASSERT_TRUE(config.ok()) << config.error().message;
    auto parsed = ImageConfig::parse(*config);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    EXPECT_EQ(parsed->os(), "linux");
    ASSERT_EQ(parsed->diff_ids().size(), 1U);
  }
}

TEST(RegistryE2E, BasicAuthFromFlagsAndConfigJsonNeverLogsTheCredentials) {
  RegistryServer server(basic_config());
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "basic");
  LogCapture capture;

  auto anonymous = client_for(server);
  auto refused = anonymous->head_blob("ferry/b", img.layer_desc.digest);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, EACCES);
  EXPECT_NE(refused.error().message.find("requires credentials"), std::string::npos) << refused.error().message;

  auto wrong = client_for(server, *Credentials::from_user_pass("alice:not-the-password"));
  auto rejected = wrong->head_blob("ferry/b", img.layer_desc.digest);
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.error().code, EACCES);
  EXPECT_NE(rejected.error().message.find("401"), std::string::npos) << rejected.error().message;
  EXPECT_EQ(rejected.error().message.find("not-the-password"), std::string::npos);

  const std::string secret = server.config().password;
  auto good = client_for(server, *Credentials::from_user_pass("alice:" + secret));
  push_image(*good, "ferry/b", "v1", img);

  std::ofstream(tmp / "config.json") << R"({"auths":{")" + server.host() + R"(":{"auth":")" +
                                            base64_encode("alice:" + secret) + R"("}}})";
  auto creds = load_docker_credentials(tmp / "config.json", server.host());
  ASSERT_TRUE(creds.ok() && creds->has_value());
  auto from_file = client_for(server, **creds);
  auto m = from_file->get_manifest("ferry/b", "v1");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->bytes, img.manifest_bytes);

  const std::string log = capture.text();
  EXPECT_NE(log.find("GET /v2/ferry/b/manifests/v1"), std::string::npos) << log;  // it did log
  EXPECT_EQ(log.find(secret), std::string::npos);
  EXPECT_EQ(log.find(base64_encode("alice:" + secret)), std::string::npos);
  EXPECT_EQ(log.find("Authorization"), std::string::npos);
}

TEST(RegistryE2E, TokenAuthOverTlsWithATestCa) {
  RegistryServer server(token_config(true, 300));
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "token");
  LogCapture capture;
  const std::string secret = server.config().password;
  auto c = client_for(server, *Credentials::from_user_pass("alice:" + secret));
  push_image(*c, "ferry/t", "v1", img);
  auto m = c->get_manifest("ferry/t", "v1");
  ASSERT_TRUE(m.ok()) << m.error().message;
  std::vector<std::byte> out(100);
  ASSERT_TRUE(c->read_blob_range("ferry/t", img.layer_desc.digest, 50, out).ok());
  EXPECT_EQ(std::memcmp(out.data(), img.layer.data() + 50, 100), 0);
  // One token for push (pull,push), one for pull: cached, not fetched per request.
  EXPECT_EQ(c->stats().token_fetches.load(), 2U);
  const std::string tokens = server.token_log();
  EXPECT_NE(tokens.find("scope=repository%3Aferry%2Ft%3Apull%2Cpush"), std::string::npos) << tokens;
  EXPECT_NE(tokens.find("service=ferry-test-registry"), std::string::npos) << tokens;
  EXPECT_EQ(count(tokens, " anonymous"), 0U) << tokens;  // credentials went to the realm

  // Without the CA: the certificate is refused; with skip_verify it is not checked.
  RegistryOptions no_ca;
  no_ca.host = server.host();
  no_ca.credentials = *Credentials::from_user_pass("alice:" + secret);
  auto untrusting = std::move(RegistryClient::create(no_ca)).value();
  auto refused = untrusting->get_manifest("ferry/t", "v1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, EPROTO) << refused.error().message;
  no_ca.tls.skip_verify = true;
  auto skipping = std::move(RegistryClient::create(no_ca)).value();
  EXPECT_TRUE(skipping->get_manifest("ferry/t", "v1").ok());

  // A wrong password is refused by the realm, named as such.
  auto wrong = client_for(server, *Credentials::from_user_pass("alice:wrong"));
  auto denied = wrong->get_manifest("ferry/t", "v1");
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code, EACCES);
  EXPECT_NE(denied.error().message.find("token realm"), std::string::npos) << denied.error().message;

  const std::string log = capture.text();
  EXPECT_EQ(log.find(secret), std::string::npos);
  EXPECT_EQ(log.find("Bearer "), std::string::npos);
  EXPECT_EQ(log.find("eyJ"), std::string::npos);  // no JWT
}

TEST(RegistryE2E, AnUnreadableCaFileIsAnErrorNamingIt) {
  RegistryOptions o;
  o.host = "127.0.0.1:1";
  o.tls.ca_files = {"/nonexistent/ca.pem"};
  auto c = RegistryClient::create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("/nonexistent/ca.pem"), std::string::npos) << c.error().message;
  o.host = "bad host";
  o.tls.ca_files.clear();
  EXPECT_EQ(RegistryClient::create(o).error().code, EINVAL);
}

TEST(RegistryE2E, ATokenIsRefreshedBeforeItExpires) {
  // The registry accepts tokens for 300 s; the client is told 6 s, so it must refresh on its
  // own, before a request, never through a 401.
  RegistryServer server(token_config(false, 6));
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "refresh");
  auto c = client_for(server, *Credentials::from_user_pass("alice:" + server.config().password));
  push_image(*c, "ferry/r", "v1", img);
  ASSERT_TRUE(c->get_manifest("ferry/r", "v1").ok());
  const uint64_t fetches = c->stats().token_fetches;
  const uint64_t requests = c->stats().requests;
  const auto issued = std::chrono::steady_clock::now();
  ASSERT_TRUE(c->get_manifest("ferry/r", "v1").ok());
  EXPECT_EQ(c->stats().token_fetches.load(), fetches);  // still fresh: reused
  EXPECT_EQ(c->stats().requests.load(), requests + 1);
  // Due 4.8 s after issue (a fifth of its life early); surely due 6 s after.
  ASSERT_TRUE(ferry::test::wait_until(
      [&] { return std::chrono::steady_clock::now() - issued > std::chrono::milliseconds(6100); }, std::chrono::seconds(10)));
  const size_t unauthorized = count(server.log(), "http.response.status=401");
  ASSERT_TRUE(c->get_manifest("ferry/r", "v1").ok());
  EXPECT_EQ(c->stats().token_fetches.load(), fetches + 1);
  EXPECT_EQ(c->stats().requests.load(), requests + 3);  // token + GET, no 401 round trip
  EXPECT_EQ(count(server.log(), "http.response.status=401"), unauthorized);
}

TEST(RegistryE2E, ConcurrentRangeReadsShareOneClientAndOneToken) {
  // What a lazy fetcher does: many threads, one client, Range reads of one blob.
  RegistryServer server(token_config(false, 300));
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "threads");
  auto c = client_for(server, *Credentials::from_user_pass("alice:" + server.config().password));
  auto pushed = c->push_blob("ferry/p", img.layer_desc, img.layer);
  ASSERT_TRUE(pushed.ok()) << pushed.error().message;
  // A fresh client: all threads meet the first 401 together.
  c = client_for(server, *Credentials::from_user_pass("alice:" + server.config().password));
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::byte> out(4096);
      for (int i = 0; i < 20; ++i) {
        const uint64_t off = (static_cast<uint64_t>(t) * 7919 + static_cast<uint64_t>(i) * 104729) % (img.layer.size() - out.size());
        auto st = c->read_blob_range("ferry/p", img.layer_desc.digest, off, out, Clock::now() + std::chrono::seconds(20));
        if (!st.ok()) {
          ++failed;
        } else if (std::memcmp(out.data(), img.layer.data() + off, out.size()) != 0) {
          ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(c->stats().token_fetches.load(), 1U);  // the pull scope, fetched once for all threads
}

}  // namespace
}  // namespace ferry::oci
