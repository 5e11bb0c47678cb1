// RegistryClient against faults a real registry does not produce on demand: 5xx answers, a
// server that never answers, refused connections, redirects to another host, revoked tokens,
// wrong bytes, a registry that ignores Range. The scripted server answers in order and records
// what it was sent.
#include <gtest/gtest.h>

#include "oci/registry_client.h"
#include "oci/registry_fixture.h"

namespace ferry::oci {
namespace {

using test::ScriptedAnswer;
using test::ScriptedHttpServer;

const std::string kBody = "0123456789abcdefghij";
const Digest kDigest = Digest::of(kBody);

std::unique_ptr<RegistryClient> client(const std::string& host, Credentials creds = {}) {
  RegistryOptions o;
  o.host = host;
  o.plain_http = true;
  o.credentials = std::move(creds);
  o.retry_limit = 3;
  o.backoff = std::chrono::milliseconds(10);
  o.timeout = std::chrono::seconds(10);
  return std::move(RegistryClient::create(std::move(o))).value();
}

ScriptedAnswer status(int code, const std::string& extra = {}) {
  return {"HTTP/1.1 " + std::to_string(code) + " X\r\n" + extra, "", false};
}

TEST(RegistryFaults, RetriesServerErrorsWithBackoffThenSucceeds) {
  ScriptedHttpServer s;
  s.push(status(503));
  s.push(status(500));
  s.push({"HTTP/1.1 206 Partial Content\r\n", kBody.substr(5, 4), false});
  auto c = client(s.host());
  std::vector<std::byte> out(4);
  auto st = c->read_blob_range("r", kDigest, 5, out);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out.data()), 4), "5678");
  EXPECT_EQ(c->stats().retries.load(), 2U);
  const auto reqs = s.requests();
  ASSERT_EQ(reqs.size(), 3U);
  EXPECT_NE(reqs[2].find("Range: bytes=5-8"), std::string::npos) << reqs[2];
}

TEST(RegistryFaults, GivesUpAfterTheRetryLimitNamingTheBlob) {
  ScriptedHttpServer s;
  for (int i = 0; i < 4; ++i) s.push({"HTTP/1.1 503 X\r\n", R"({"errors":[{"code":"UNAVAILABLE","message":"busy"}]})", false});
  auto c = client(s.host());
  auto r = c->head_blob("ns/r", kDigest);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EIO);
  EXPECT_NE(r.error().message.find("HTTP 503"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(kDigest.str()), std::string::npos);
  EXPECT_EQ(s.requests().size(), 4U);  // 1 + retry_limit
}

TEST(RegistryFaults, ConnectionRefusedIsRetriedThenReported) {
  auto c = client("127.0.0.1:" + std::to_string(test::free_tcp_port()));
  auto r = c->get_manifest("ns/r", "v1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ECONNREFUSED) << r.error().message;
  EXPECT_NE(r.error().message.find("repository ns/r, manifest v1"), std::string::npos) << r.error().message;
  EXPECT_EQ(c->stats().retries.load(), 3U);
}

TEST(RegistryFaults, AHangingServerEndsAtTheDeadline) {
  ScriptedHttpServer s;
  for (int i = 0; i < 5; ++i) s.push({"", "", true});
  auto c = client(s.host());
  const auto start = Clock::now();
  std::vector<std::byte> out(4);
  auto st = c->read_blob_range("r", kDigest, 0, out, start + std::chrono::milliseconds(600));
  const auto took = Clock::now() - start;
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ETIMEDOUT) << st.error().message;
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  EXPECT_GE(took, std::chrono::milliseconds(550));
}

TEST(RegistryFaults, ARedirectToAnotherHostCarriesNoAuthorization) {
  ScriptedHttpServer registry;
  ScriptedHttpServer storage;
  registry.push(status(307, "Location: http://" + storage.host() + "/bucket/blob?sig=1\r\n"));
  storage.push({"HTTP/1.1 200 OK\r\n", kBody, false});
  Credentials creds;
  creds.registry_token = "static-secret-token";
  auto c = client(registry.host(), creds);
  auto blob = c->get_blob("r", Descriptor{"x", kDigest, static_cast<int64_t>(kBody.size()), {}, {}, {}}, 100);
  ASSERT_TRUE(blob.ok()) << blob.error().message;
  EXPECT_EQ(*blob, kBody);
  ASSERT_EQ(registry.requests().size(), 1U);
  EXPECT_NE(registry.requests()[0].find("Authorization: Bearer static-secret-token"), std::string::npos);
  ASSERT_EQ(storage.requests().size(), 1U);
  EXPECT_NE(storage.requests()[0].find("GET /bucket/blob?sig=1"), std::string::npos) << storage.requests()[0];
  EXPECT_EQ(storage.requests()[0].find("Authorization"), std::string::npos) << storage.requests()[0];
}

TEST(RegistryFaults, ARejectedTokenIsRefetchedExactlyOnce) {
  ScriptedHttpServer s;
  const std::string challenge = "WWW-Authenticate: Bearer realm=\"http://" + s.host() +
                                "/token\",service=\"svc\",scope=\"repository:ns/r:pull\"\r\n";
  const auto token = [](const std::string& t) {
    return ScriptedAnswer{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
                          R"({"token":")" + t + R"(","expires_in":300})", false};
  };
  const ScriptedAnswer manifest{"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n", "{}", false};
  s.push(status(401, challenge));  // anonymous first try
  s.push(token("t1"));
  s.push(manifest);                // with t1
  s.push(status(401, challenge));  // t1 revoked early
  s.push(token("t2"));
  s.push(manifest);                // with t2
  s.push(status(401, challenge));  // t2 revoked too ...
  s.push(token("t3"));
  s.push(status(401, challenge));  // ... and t3 refused: an error, not a loop
  auto c = client(s.host());
  ASSERT_TRUE(c->get_manifest("ns/r", "v1").ok());
  ASSERT_TRUE(c->get_manifest("ns/r", "v1").ok());
  auto refused = c->get_manifest("ns/r", "v1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, EACCES);
  EXPECT_EQ(refused.error().message.find("t3"), std::string::npos);
  const auto reqs = s.requests();
  ASSERT_EQ(reqs.size(), 9U);
  EXPECT_NE(reqs[1].find("GET /token?service=svc&scope=repository%3Ans%2Fr%3Apull"), std::string::npos) << reqs[1];
  EXPECT_NE(reqs[2].find("Authorization: Bearer t1"), std::string::npos);
  EXPECT_NE(reqs[3].find("Authorization: Bearer t1"), std::string::npos);
  EXPECT_NE(reqs[5].find("Authorization: Bearer t2"), std::string::npos);
  EXPECT_NE(reqs[8].find("Authorization: Bearer t3"), std::string::npos);
  EXPECT_EQ(c->stats().token_fetches.load(), 3U);
}

TEST(RegistryFaults, WrongBytesAreNeverReturned) {
  ScriptedHttpServer s;
  s.push({"HTTP/1.1 200 OK\r\n", "not the blob", false});
  s.push({"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n", "{}", false});
  auto c = client(s.host());
  auto blob = c->get_blob("r", Descriptor{"x", kDigest, 0, {}, {}, {}}, 100);
  ASSERT_FALSE(blob.ok());
  EXPECT_EQ(blob.error().code, EBADMSG);
  EXPECT_NE(blob.error().message.find("digest mismatch"), std::string::npos);
  auto manifest = c->get_manifest("r", kDigest.str());
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.error().code, EBADMSG);
}

TEST(RegistryFaults, ARegistryThatIgnoresRangeStillYieldsTheRightBytes) {
  ScriptedHttpServer s;
  s.push({"HTTP/1.1 200 OK\r\n", kBody, false});
  auto c = client(s.host());
  std::vector<std::byte> out(3);
  ASSERT_TRUE(c->read_blob_range("r", kDigest, 10, out).ok());
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out.data()), 3), "abc");
}

}  // namespace
}  // namespace ferry::oci
