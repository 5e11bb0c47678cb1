// The kit's FaultProxy in front of a real HTTP server (ferry's HttpServer on loopback TCP): each
// fault does to the answer what it says, and only to the requests it is meant for.
#include "kit/fault_proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>

#include "common/unique_fd.h"
#include "http/http_server.h"
#include "kit/wait.h"

namespace ferry::testkit {
namespace {

using namespace std::chrono_literals;

const std::string kBody(10000, 'b');

struct Upstream {
  std::atomic<int> hits{0};
  std::unique_ptr<http::HttpServer> server;
  int port = 0;
  Upstream() {
    auto s = http::HttpServer::listen_tcp("127.0.0.1:0", [this](const http::HttpRequest& r) {
      ++hits;
      return http::HttpResponse{200, r.path == "/echo" ? r.body : kBody, "text/plain"};
    });
    if (!s.ok()) {
      ADD_FAILURE() << s.error().message;
      return;
    }
    server = std::move(*s);
    const std::string& ep = server->endpoint();
    port = std::stoi(ep.substr(ep.rfind(':') + 1));
  }
};

struct Answer {
  bool connected = false;
  std::string raw;  // everything read until the proxy closed (or 10 s passed)
  [[nodiscard]] std::string body() const {
    size_t e = raw.find("\r\n\r\n");
    return e == std::string::npos ? "" : raw.substr(e + 4);
  }
  [[nodiscard]] int status() const { return raw.size() > 12 ? std::stoi(raw.substr(9, 3)) : 0; }
};

Answer get(int port, const std::string& path, const std::string& body = {}) {
  Answer a;
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return a;
  a.connected = true;
  const std::string req = std::string(body.empty() ? "GET " : "PUT ") + path +
                          " HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nConnection: keep-alive\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return a;
  const int64_t deadline = now_ns() + 10'000'000'000;
  char buf[4096];
  while (now_ns() < deadline) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) break;
    a.raw.append(buf, static_cast<size_t>(n));
  }
  return a;
}

TEST(FaultProxy, PassesRequestsAndAnswersThroughAndLogsThem) {
  Upstream up;
  FaultProxy proxy(up.port);
  ASSERT_TRUE(proxy.ok());
  auto a = get(proxy.port(), "/blob");
  EXPECT_EQ(a.status(), 200) << a.raw;
  EXPECT_EQ(a.body(), kBody);
  auto e = get(proxy.port(), "/echo", "hello");
  EXPECT_EQ(e.body(), "hello");
  EXPECT_EQ(proxy.requests(), 2U);
  EXPECT_EQ(up.hits.load(), 2);
  auto log = proxy.request_log();
  ASSERT_EQ(log.size(), 2U);
  EXPECT_EQ(log[0], "GET /blob HTTP/1.1 Range: bytes=0-9");
}

TEST(FaultProxy, AnswersAnInjectedStatusWithoutReachingTheServer) {
  Upstream up;
  FaultProxy proxy(up.port);
  proxy.push_fault(Fault::answer(503));
  EXPECT_EQ(get(proxy.port(), "/blob").status(), 503);
  EXPECT_EQ(up.hits.load(), 0);
  EXPECT_EQ(get(proxy.port(), "/blob").status(), 200);  // one-shot
  EXPECT_EQ(proxy.faults_applied(), 1U);
}

TEST(FaultProxy, CorruptsExactlyOneBodyByte) {
  Upstream up;
  FaultProxy proxy(up.port);
  proxy.push_fault(Fault::corrupt_body_at(7000));
  auto a = get(proxy.port(), "/blob");
  ASSERT_EQ(a.body().size(), kBody.size());
  size_t diffs = 0;
  for (size_t i = 0; i < kBody.size(); ++i) diffs += a.body()[i] != kBody[i];
  EXPECT_EQ(diffs, 1U);
  EXPECT_NE(a.body()[7000], kBody[7000]);
}

TEST(FaultProxy, CutsTheAnswerAfterSomeBytes) {
  Upstream up;
  FaultProxy proxy(up.port);
  proxy.push_fault(Fault::cut_after(100));
  auto a = get(proxy.port(), "/blob");
  EXPECT_EQ(a.raw.size(), 100U);
  EXPECT_EQ(proxy.bytes_to_client(), 100U);
}

TEST(FaultProxy, StallsUntilReleased) {
  Upstream up;
  FaultProxy proxy(up.port);
  proxy.set_fault(Fault::stall());
  auto pending = std::async(std::launch::async, [&] { return get(proxy.port(), "/blob"); });
  ASSERT_TRUE(wait_until([&] { return up.hits.load() == 1; }, 10s));
  EXPECT_EQ(pending.wait_for(200ms), std::future_status::timeout);  // forwarded, not answered
  EXPECT_EQ(proxy.bytes_to_client(), 0U);
  proxy.release_stalls();
  EXPECT_EQ(pending.get().body(), kBody);
}

TEST(FaultProxy, RefusesAndDelaysOnlyMatchingPaths) {
  Upstream up;
  FaultProxy proxy(up.port);
  proxy.set_fault(Fault::refuse("/blobs/"));
  EXPECT_TRUE(get(proxy.port(), "/v2/r/blobs/sha256:1").raw.empty());
  EXPECT_EQ(get(proxy.port(), "/v2/r/manifests/x").status(), 200);
  proxy.set_fault(Fault::delay_by(300ms));
  const int64_t t0 = now_ns();
  EXPECT_EQ(get(proxy.port(), "/blob").status(), 200);
  EXPECT_GE(now_ns() - t0, 300'000'000);
}

TEST(FaultProxy, AStoppedServerIsAClosedConnection) {
  int port;
  {
    Upstream up;
    port = up.port;
  }
  FaultProxy proxy(port);
  auto a = get(proxy.port(), "/blob");
  EXPECT_TRUE(a.connected);
  EXPECT_TRUE(a.raw.empty());
}

TEST(FaultProxy, StopsWithAStalledConnectionOpen) {
  Upstream up;
  auto proxy = std::make_unique<FaultProxy>(up.port);
  proxy->set_fault(Fault::stall());
  auto pending = std::async(std::launch::async, [port = proxy->port()] { return get(port, "/blob"); });
  ASSERT_TRUE(wait_until([&] { return up.hits.load() == 1; }, 10s));
  const int64_t t0 = now_ns();
  proxy.reset();  // must not wait for the stall
  EXPECT_LT(now_ns() - t0, 2'000'000'000);
  EXPECT_TRUE(pending.get().raw.empty());
}

}  // namespace
}  // namespace ferry::testkit
