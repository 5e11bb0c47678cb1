// HttpServer + http_request over real sockets in a private directory: routing of methods,
// paths, queries and bodies; socket file hygiene (mode, live/stale/foreign files, unlink);
// limits (413, oversized headers); hostile clients (garbage, truncation, silence); concurrency;
// client error codes; the JSON helpers. Every wait has a deadline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "http/http_client.h"
#include "http/http_server.h"
#include "http/json_errors.h"
#include "support/test_support.h"

namespace ferry::http {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::TempDir;
using Clock = std::chrono::steady_clock;

// Answers every request with what it received.
HttpResponse echo(const HttpRequest& r) {
  return json_ok({{"method", r.method}, {"path", r.path}, {"query", r.query}, {"body", r.body}});
}

std::unique_ptr<HttpServer> must_listen(const std::string& path, HttpHandler h = echo,
                                        HttpServerOptions o = {}) {
  auto s = HttpServer::listen_unix(path, std::move(h), o);
  if (!s.ok()) ADD_FAILURE() << s.error().message;
  return s.ok() ? std::move(*s) : nullptr;
}

// ---- raw socket helpers, for what a well-behaved client would never send ----

UniqueFd connect_raw(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return UniqueFd();
  return fd;
}

// Writes what it can; a server that closed early is not an error here. MSG_NOSIGNAL: no SIGPIPE.
void send_raw(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads until the server closes the connection. False if it has not by the deadline.
bool read_until_eof(int fd, std::chrono::milliseconds timeout, std::string* out = nullptr) {
  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n < 0) return errno == EINTR ? false : true;
    if (out != nullptr) out->append(buf, static_cast<size_t>(n));
  }
}

// The status code of the first response in `raw` ("HTTP/1.1 431 ..."), or 0.
int status_of(const std::string& raw) {
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12) return 0;
  int status = 0;
  std::from_chars(raw.data() + 9, raw.data() + 12, status);
  return status;
}

json body_of(const Result<HttpResponse>& r) {
  return json::parse(r->body);
}

// ---- routing ----

TEST(HttpServer, RoundTripsMethodsPathsQueriesAndBodies) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  auto server = must_listen(sock);
  ASSERT_TRUE(server);
  EXPECT_EQ(server->endpoint(), sock);

  auto get = http_request(sock, "GET", "/api/v1/daemon");
  ASSERT_TRUE(get.ok()) << get.error().message;
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->content_type, "application/json");
  EXPECT_EQ(body_of(get),
            (json{{"method", "GET"}, {"path", "/api/v1/daemon"}, {"query", json::object()}, {"body", ""}}));

  auto put = http_request(sock, "PUT", "/api/v1/mount?mountpoint=%2Fsub%20dir&flag", R"({"source":"/b"})");
  ASSERT_TRUE(put.ok()) << put.error().message;
  EXPECT_EQ(body_of(put)["method"], "PUT");
  EXPECT_EQ(body_of(put)["path"], "/api/v1/mount");
  EXPECT_EQ(body_of(put)["query"], (json{{"mountpoint", "/sub dir"}, {"flag", ""}}));
  EXPECT_EQ(body_of(put)["body"], R"({"source":"/b"})");

  auto post = http_request(sock, "POST", "/api/v1/mount?mountpoint=" + url_encode("/a b&c=d"), "{}");
  ASSERT_TRUE(post.ok()) << post.error().message;
  EXPECT_EQ(body_of(post)["method"], "POST");
  EXPECT_EQ(body_of(post)["query"], (json{{"mountpoint", "/a b&c=d"}}));
  EXPECT_EQ(body_of(post)["body"], "{}");

  auto del = http_request(sock, "DELETE", "/api/v1/mount?mountpoint=/x");
  ASSERT_TRUE(del.ok()) << del.error().message;
  EXPECT_EQ(body_of(del)["method"], "DELETE");
  EXPECT_EQ(body_of(del)["query"], (json{{"mountpoint", "/x"}}));

  auto del_body = http_request(sock, "DELETE", "/x", "payload");
  ASSERT_TRUE(del_body.ok());
  EXPECT_EQ(body_of(del_body)["body"], "payload");

  auto empty_put = http_request(sock, "PUT", "/api/v1/daemon/start");
  ASSERT_TRUE(empty_put.ok());
  EXPECT_EQ(body_of(empty_put)["body"], "");

  // Binary bodies arrive byte for byte.
  std::string binary(70000, '\0');
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 7);
  auto bin = http_request(sock, "POST", "/bin", binary);
  ASSERT_TRUE(bin.ok());
  EXPECT_EQ(bin->status, 200);
  auto size_server = must_listen(dir / "size.sock", [](const HttpRequest& r) {
    return HttpResponse{
        200, std::to_string(r.body.size()) + ":" + std::to_string(std::hash<std::string>{}(r.body)),
        "text/plain"};
  });
  auto sized = http_request(dir / "size.sock", "POST", "/bin", binary);
  ASSERT_TRUE(sized.ok());
  EXPECT_EQ(sized->body,
            std::to_string(binary.size()) + ":" + std::to_string(std::hash<std::string>{}(binary)));
  EXPECT_EQ(sized->content_type, "text/plain");
}

TEST(HttpServer, AnyMethodReachesTheHandler) {
  TempDir dir;
  auto server = must_listen(dir / "api.sock", [](const HttpRequest& r) {
    if (r.method == "GET") return json_ok({{"ok", true}});
    return json_error(405, "MethodNotAllowed", r.method + " is not allowed");
  });
  for (const char* m : {"PATCH", "OPTIONS", "FROB", "M-SEARCH"}) {
    auto r = http_request(dir / "api.sock", m, "/x");
    ASSERT_TRUE(r.ok()) << m << ": " << r.error().message;
    EXPECT_EQ(r->status, 405) << m;
    EXPECT_EQ(body_of(r),
              (json{{"code", "MethodNotAllowed"}, {"message", std::string(m) + " is not allowed"}}));
  }
}

TEST(HttpServer, JsonHelpersOverTheWire) {
  TempDir dir;
  auto server = must_listen(dir / "api.sock", [](const HttpRequest& r) -> HttpResponse {
    if (r.path == "/none") return no_content();
    if (r.path == "/created") return json_ok({{"id", 7}}, 201);
    auto parsed = parse_json_body(r);
    if (!parsed.ok()) return json_error(400, "InvalidArgument", parsed.error().message);
    return json_ok(*parsed);
  });
  const auto sock = dir / "api.sock";
  auto none = http_request(sock, "PUT", "/none");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->status, 204);
  EXPECT_EQ(none->body, "");
  auto created = http_request(sock, "POST", "/created");
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->status, 201);
  EXPECT_EQ(body_of(created), (json{{"id", 7}}));
  auto good = http_request(sock, "POST", "/p", R"({"a":[1,2]})");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->status, 200);
  EXPECT_EQ(body_of(good), (json{{"a", {1, 2}}}));
  auto bad = http_request(sock, "POST", "/p", "{nope");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(body_of(bad)["code"], "InvalidArgument");
  EXPECT_NE(body_of(bad)["message"].get<std::string>().find("not valid JSON"), std::string::npos);
}

TEST(JsonErrors, BuildsNydusShapedBodies) {
  auto e = json_error(404, "NotFound", "no route for GET /x");
  EXPECT_EQ(e.status, 404);
  EXPECT_EQ(e.content_type, "application/json");
  EXPECT_EQ(json::parse(e.body), (json{{"code", "NotFound"}, {"message", "no route for GET /x"}}));
  // Invalid UTF-8 in a message (a path, say) must not make the error unsendable.
  auto bad_utf8 = json_error(500, "InternalError", std::string("path '\xff\xfe'"));
  EXPECT_TRUE(json::accept(bad_utf8.body));
  auto ok = json_ok(json::array({1, "x"}), 202);
  EXPECT_EQ(ok.status, 202);
  EXPECT_EQ(ok.body, R"([1,"x"])");
  auto nc = no_content();
  EXPECT_EQ(nc.status, 204);
  EXPECT_TRUE(nc.body.empty());
}

TEST(JsonErrors, ParseJsonBodyNamesTheProblem) {
  auto parse = [](std::string body) { return parse_json_body(HttpRequest{"PUT", "/", {}, std::move(body)}); };
  auto empty = parse("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, EINVAL);
  EXPECT_NE(empty.error().message.find("empty"), std::string::npos);
  auto garbage = parse("{\"a\":");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error().message.find("not valid JSON"), std::string::npos);
  auto array = parse("[1,2]");
  ASSERT_FALSE(array.ok());
  EXPECT_NE(array.error().message.find("must be a JSON object, not array"), std::string::npos);
  auto number = parse("42");
  ASSERT_FALSE(number.ok());
  EXPECT_NE(number.error().message.find("not number"), std::string::npos);
  auto deep = parse("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.error().message.find("deeper than"), std::string::npos);
  auto fine = parse(R"({"source":"/b","config":"{}","prefetch_files":["/a"]})");
  ASSERT_TRUE(fine.ok()) << fine.error().message;
  EXPECT_EQ((*fine)["source"], "/b");
}

TEST(HttpServer, HandlerExceptionsAndBadStatusesBecome500) {
  TempDir dir;
  auto server = must_listen(dir / "api.sock", [](const HttpRequest& r) -> HttpResponse {
    if (r.path == "/throw") throw std::runtime_error("boom");
    if (r.path == "/throw-int") throw 42;
    return HttpResponse{42, "x", "text/plain"};
  });
  auto thrown = http_request(dir / "api.sock", "GET", "/throw");
  ASSERT_TRUE(thrown.ok());
  EXPECT_EQ(thrown->status, 500);
  EXPECT_EQ(body_of(thrown)["code"], "InternalError");
  EXPECT_NE(body_of(thrown)["message"].get<std::string>().find("boom"), std::string::npos);
  auto thrown_int = http_request(dir / "api.sock", "GET", "/throw-int");
  ASSERT_TRUE(thrown_int.ok());
  EXPECT_EQ(thrown_int->status, 500);
  auto bad_status = http_request(dir / "api.sock", "GET", "/status");
  ASSERT_TRUE(bad_status.ok());
  EXPECT_EQ(bad_status->status, 500);
  EXPECT_NE(body_of(bad_status)["message"].get<std::string>().find("42"), std::string::npos);
}

// ---- the socket file ----

TEST(HttpServer, SocketFileHasTheRequestedModeAndIsRemovedOnStop) {
  TempDir dir;
  const auto sock = dir / "run/ferry/api.sock";  // parents are created
  {
    auto server = must_listen(sock);
    ASSERT_TRUE(server);
    struct stat st {};
    ASSERT_EQ(::stat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ASSERT_EQ(::stat((dir / "run/ferry").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0700, 0700u);
  }
  EXPECT_NE(::access(sock.c_str(), F_OK), 0);

  HttpServerOptions group;
  group.socket_mode = 0660;
  auto server = must_listen(sock, echo, group);
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST(HttpServer, RefusesAPathALiveServerHolds) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  auto first = must_listen(sock);
  ASSERT_TRUE(first);
  auto second = HttpServer::listen_unix(sock, echo);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, EADDRINUSE);
  EXPECT_EQ(second.error().message, "cannot listen on " + sock + ": another process is listening on it");
  // The first server is untouched and still answers.
  auto r = http_request(sock, "GET", "/still-there");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(body_of(r)["path"], "/still-there");
}

TEST(HttpServer, ReplacesAStaleSocket) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  {
    // A socket file whose server died: bound, then closed without unlink.
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(fd.get(), 1), 0);
  }
  struct stat before {};
  ASSERT_EQ(::lstat(sock.c_str(), &before), 0);
  ASSERT_TRUE(S_ISSOCK(before.st_mode));
  auto stale_client = http_request(sock, "GET", "/");
  ASSERT_FALSE(stale_client.ok());
  EXPECT_EQ(stale_client.error().code, ECONNREFUSED);
  EXPECT_NE(stale_client.error().message.find("cannot connect to '" + sock + "'"), std::string::npos);

  auto server = must_listen(sock);
  ASSERT_TRUE(server);
  auto r = http_request(sock, "GET", "/fresh");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(body_of(r)["path"], "/fresh");
}

TEST(HttpServer, RefusesToReplaceWhatIsNotASocket) {
  TempDir dir;
  const auto file = dir / "api.sock";
  { std::ofstream(file) << "precious"; }
  auto s = HttpServer::listen_unix(file, echo);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, EEXIST);
  EXPECT_NE(s.error().message.find("is a regular file"), std::string::npos) << s.error().message;
  std::string content;
  std::getline(std::ifstream(file), content);
  EXPECT_EQ(content, "precious");

  ASSERT_EQ(::mkdir((dir / "d").c_str(), 0755), 0);
  auto d = HttpServer::listen_unix(dir / "d", echo);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("is a directory"), std::string::npos);

  ASSERT_EQ(::symlink(file.c_str(), (dir / "link").c_str()), 0);
  auto l = HttpServer::listen_unix(dir / "link", echo);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().message.find("symbolic link"), std::string::npos);

  auto too_long = HttpServer::listen_unix(dir / std::string(120, 'x'), echo);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code, ENAMETOOLONG);
}

TEST(HttpServer, LeavesAReplacementSocketAlone) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  auto old_server = must_listen(sock);
  ASSERT_TRUE(old_server);
  // Someone removes our file and a successor binds the path.
  ASSERT_EQ(::unlink(sock.c_str()), 0);
  auto successor = must_listen(sock);
  ASSERT_TRUE(successor);
  old_server.reset();
  EXPECT_EQ(::access(sock.c_str(), F_OK), 0) << "the old server removed its successor's socket";
  auto r = http_request(sock, "GET", "/successor");
  ASSERT_TRUE(r.ok()) << r.error().message;
}

// ---- limits ----

TEST(HttpServer, OversizedBodiesGet413AndTheHandlerNeverRuns) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  std::atomic<int> calls{0};
  HttpServerOptions opts;
  opts.max_body = 1 << 20;
  auto server = must_listen(
      sock,
      [&calls](const HttpRequest& r) {
        ++calls;
        return HttpResponse{200, std::to_string(r.body.size()), "text/plain"};
      },
      opts);

  auto at_limit = http_request(sock, "PUT", "/x", std::string(opts.max_body, 'a'));
  ASSERT_TRUE(at_limit.ok()) << at_limit.error().message;
  EXPECT_EQ(at_limit->status, 200);
  EXPECT_EQ(at_limit->body, std::to_string(opts.max_body));
  EXPECT_EQ(calls.load(), 1);

  // Declared too large (Content-Length): answered before the body is read.
  for (size_t size : {opts.max_body + 1, size_t{8} << 20}) {
    auto over = http_request(sock, "POST", "/x", std::string(size, 'b'));
    ASSERT_TRUE(over.ok()) << size << ": " << over.error().message;
    EXPECT_EQ(over->status, 413);
    EXPECT_EQ(over->content_type, "application/json");
    EXPECT_EQ(body_of(over)["code"], "PayloadTooLarge");
  }
  EXPECT_EQ(calls.load(), 1);

  // Too large in chunked encoding (no Content-Length): detected while streaming.
  {
    auto fd = connect_raw(sock);
    ASSERT_TRUE(fd);
    send_raw(fd.get(), "PUT /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk(64 << 10, 'c');
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
    for (int i = 0; i < 20; ++i) send_raw(fd.get(), std::string(size_line) + chunk + "\r\n");
    send_raw(fd.get(), "0\r\n\r\n");
    ::shutdown(fd.get(), SHUT_WR);
    std::string raw;
    ASSERT_TRUE(read_until_eof(fd.get(), 10s, &raw));
    EXPECT_EQ(status_of(raw), 413) << raw.substr(0, 200);
    EXPECT_NE(raw.find("PayloadTooLarge"), std::string::npos);
  }
  EXPECT_EQ(calls.load(), 1);

  auto after = http_request(sock, "GET", "/after");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->status, 200);
}

TEST(HttpServer, HugeHeadersAreRejectedAndTheServerStillServes) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  std::atomic<int> calls{0};
  auto server = must_listen(sock, [&calls](const HttpRequest& r) {
    ++calls;
    return echo(r);
  });
  // (request, the status it is answered with)
  const std::vector<std::pair<std::string, int>> hostile = {
      {"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100 << 10, 'h') + "\r\n\r\n", 431},
      {"GET / HTTP/1.1\r\nHost: x\r\n" +
           [] {
             std::string many;
             for (int i = 0; i < 5000; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
             return many;
           }() +
           "\r\n",
       431},
      {"GET /" + std::string(200 << 10, 'u') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
  };
  for (const auto& [request, expected] : hostile) {
    auto fd = connect_raw(sock);
    ASSERT_TRUE(fd);
    send_raw(fd.get(), request);
    ::shutdown(fd.get(), SHUT_WR);
    std::string raw;
    ASSERT_TRUE(read_until_eof(fd.get(), 10s, &raw));
    EXPECT_EQ(status_of(raw), expected) << raw.substr(0, 200);
  }
  EXPECT_EQ(calls.load(), 0);
  auto r = http_request(sock, "GET", "/fine");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
}

// ---- hostile and slow clients ----

// One malformed or abusive request, chosen by `kind`, with random content from `rng`. Bodies
// that are complete end in "END"; truncated ones never do.
std::string malformed(int kind, std::mt19937& rng) {
  auto random_bytes = [&rng](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  };
  std::uniform_int_distribution<size_t> len(1, 3000);
  switch (kind) {
    case 0:
      return random_bytes(len(rng));
    case 1:
      return "lkjasd lkj\r\n\r\n";
    case 2:
      return "GET /api/v1/dae";
    case 3:
      return "GET /api/v1/daemon HTTP/1.1\nHost: x\n\n";
    case 4:
      return "FROB /api/v1/daemon HTTP/1.1\r\nHost: x\r\n\r\n";
    case 5:
      return "GET / HTTP/9.9\r\nHost: x\r\n\r\n";
    case 6:
      return "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + std::string(50, 'p');
    case 7:
      return "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
    case 8:
      return "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nEND";
    case 9:
      return "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\nEND";
    case 10:
      return "GET / HTTP/1.1\r\nHost x\r\nNo colon here\r\n\r\n";
    case 11:
      return "GET / HTTP/1.1\r\n\r\n";
    case 12:
      return std::string("GET /\0nul HTTP/1.1\r\nHost: x\r\n\r\n", 31);
    case 13:
      return "GET /%zz%%%/../.. HTTP/1.1\r\nHost: x\r\n\r\n";
    case 14:
      return "GET / HTTP/1.0\r\n\r\n";
    case 15:
      return "PUT /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nbody END";
    case 16:
      return "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 9\r\n\r\nENDENDEND";
    case 17:
      return "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
    case 18:
      return "\r\n\r\n\r\n";
    case 19:
      return "GET / HTTP/1.1\r\nHost: x\r\n" + random_bytes(len(rng));
    case 20:
      return "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nEND" + random_bytes(len(rng));
    default:
      return "G";
  }
}

TEST(HttpServer, SurvivesAThousandMalformedRequests) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  std::atomic<int> calls{0};
  std::atomic<int> partial_bodies{0};
  std::mutex seen_mu;
  std::vector<std::string> seen;
  HttpServerOptions opts;
  opts.connection_timeout_s = 2;  // bounds anything left waiting for bytes that never come
  auto server = must_listen(
      sock,
      [&](const HttpRequest& r) {
        ++calls;
        if (!r.body.empty() && (r.body.size() < 3 || r.body.substr(r.body.size() - 3) != "END")) {
          ++partial_bodies;
          std::lock_guard lock(seen_mu);
          seen.push_back(r.method + " " + r.path + " body=" + r.body.substr(0, 40));
        }
        return r.method == "FROB" ? json_error(405, "MethodNotAllowed", "no") : echo(r);
      },
      opts);
  std::mt19937 rng(20240611);
  int slow_closes = 0;
  for (int i = 0; i < 1000; ++i) {
    const int kind = static_cast<int>(rng() % 22);
    auto fd = connect_raw(sock);
    ASSERT_TRUE(fd) << "connect failed at request " << i;
    send_raw(fd.get(), malformed(kind, rng));
    if (rng() % 2 == 0) continue;  // abrupt close, maybe with unread data on either side
    ::shutdown(fd.get(), SHUT_WR);
    const auto t0 = Clock::now();
    EXPECT_TRUE(read_until_eof(fd.get(), 10s))
        << "server kept request " << i << " (kind " << kind << ") open";
    if (Clock::now() - t0 > 1s) ++slow_closes;
  }
  EXPECT_EQ(partial_bodies.load(), 0) << (seen.empty() ? "" : seen.front());
  EXPECT_GT(calls.load(), 0);
  // Half-closed clients are answered or dropped at once, not only when the idle timeout fires.
  EXPECT_LT(slow_closes, 10);
  auto r = http_request(sock, "PUT", "/after", "fine");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r)["body"], "fine");
}

TEST(HttpServer, SilentClientsDoNotBlockOthersAndAreTimedOut) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  HttpServerOptions opts;
  opts.connection_timeout_s = 1;
  auto server = must_listen(sock, echo, opts);
  auto silent = connect_raw(sock);
  auto half_header = connect_raw(sock);
  ASSERT_TRUE(silent);
  ASSERT_TRUE(half_header);
  send_raw(half_header.get(), "GET /slow HTTP/1.1\r\nHo");
  auto half_body = connect_raw(sock);
  send_raw(half_body.get(), "PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");

  for (int i = 0; i < 20; ++i) {
    auto r = http_request(sock, "GET", "/ping/" + std::to_string(i), {}, 2s);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(body_of(r)["path"], "/ping/" + std::to_string(i));
  }
  // The server drops each of them after the idle timeout.
  EXPECT_TRUE(read_until_eof(silent.get(), 10s));
  EXPECT_TRUE(read_until_eof(half_header.get(), 10s));
  EXPECT_TRUE(read_until_eof(half_body.get(), 10s));
}

// Holds the handler threads that pass() through it until release() (at most 20 s).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<bool> entered{false};
  void pass() {
    entered = true;
    std::unique_lock lock(mu);
    cv.wait_for(lock, 20s, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
};

TEST(HttpServer, ASlowHandlerDoesNotBlockOthers) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  Gate gate;
  auto server = must_listen(sock, [&](const HttpRequest& r) {
    if (r.path == "/slow") gate.pass();
    return echo(r);
  });
  std::thread slow([&] {
    auto r = http_request(sock, "PUT", "/slow", {}, 30s);
    EXPECT_TRUE(r.ok());
  });
  ASSERT_TRUE(test::wait_until([&] { return gate.entered.load(); }, 10s));
  for (int i = 0; i < 10; ++i) {
    auto r = http_request(sock, "GET", "/fast", {}, 2s);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  gate.release();
  slow.join();
}

// drain() is how a daemon answering "exit" knows its answer is out before it leaves: it must
// wait for a request in progress, and return true once that answer is written.
TEST(HttpServer, DrainWaitsForTheAnswerInProgress) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  Gate gate;
  auto server = must_listen(sock, [&](const HttpRequest& r) {
    gate.pass();
    return echo(r);
  });
  ASSERT_TRUE(server->drain(0ms)) << "nothing in progress: drained at once";
  std::atomic<bool> answered{false};
  std::thread client([&] {
    auto r = http_request(sock, "PUT", "/api/v1/daemon/exit", {}, 30s);
    EXPECT_TRUE(r.ok());
    answered = true;
  });
  ASSERT_TRUE(test::wait_until([&] { return gate.entered.load(); }, 10s));
  EXPECT_FALSE(server->drain(50ms)) << "drained while the handler still runs";
  std::thread releaser([&] { gate.release(); });
  EXPECT_TRUE(server->drain(20s));
  releaser.join();
  client.join();
  EXPECT_TRUE(answered.load());
}

TEST(HttpServer, ExcessConnectionsAreClosedNotQueued) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  HttpServerOptions opts;
  opts.max_connections = 3;
  auto server = must_listen(sock, echo, opts);
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(connect_raw(sock));
    send_raw(idle.back().get(), "GET /held HTTP/1.1\r\nHost: x\r\n");  // never finished
  }
  // The server has accepted all three (they hold connection slots) once a fourth is refused.
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto r = http_request(sock, "GET", "/over", {}, 2s);
        return !r.ok() && r.error().code == ECONNRESET;
      },
      10s));
  idle.clear();
  ASSERT_TRUE(test::wait_until([&] { return http_request(sock, "GET", "/again", {}, 2s).ok(); }, 10s));
}

TEST(HttpServer, StopsPromptlyWithClientsConnected) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  auto server = must_listen(sock);
  auto silent = connect_raw(sock);
  auto half = connect_raw(sock);
  send_raw(half.get(), "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
  ASSERT_TRUE(http_request(sock, "GET", "/", {}, 2s).ok());
  const auto t0 = Clock::now();
  server.reset();
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_TRUE(read_until_eof(silent.get(), 1s));
  EXPECT_TRUE(read_until_eof(half.get(), 1s));
  EXPECT_NE(::access(sock.c_str(), F_OK), 0);
}

TEST(HttpServer, ServesConcurrentClients) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  auto server = must_listen(sock);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const std::string tag = std::to_string(t) + "-" + std::to_string(i);
        auto r = http_request(sock, i % 2 ? "PUT" : "GET", "/c?tag=" + tag, i % 2 ? tag : "", 10s);
        if (!r.ok()) {
          ADD_FAILURE() << tag << ": " << r.error().message;
          continue;
        }
        auto j = json::parse(r->body);
        if (r->status == 200 && j["query"]["tag"] == tag && j["body"] == (i % 2 ? tag : "")) ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 800);
}

TEST(HttpServer, KeepsAliveAcrossRequestsOnOneConnection) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  auto server = must_listen(sock);
  auto fd = connect_raw(sock);
  ASSERT_TRUE(fd);
  send_raw(fd.get(),
           "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
           "PUT /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
           "GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string raw;
  ASSERT_TRUE(read_until_eof(fd.get(), 10s, &raw));
  EXPECT_NE(raw.find("\"/one\""), std::string::npos);
  EXPECT_NE(raw.find("\"abc\""), std::string::npos);
  EXPECT_NE(raw.find("\"/three\""), std::string::npos);
}

// ---- client errors ----

TEST(HttpClient, MissingSocketIsENOENT) {
  TempDir dir;
  auto r = http_request(dir / "absent.sock", "GET", "/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ENOENT);
  EXPECT_EQ(r.error().message.rfind("cannot connect to '" + (dir / "absent.sock") + "': ", 0), 0u)
      << r.error().message;
}

TEST(HttpClient, TimesOutOnASlowHandler) {
  TempDir dir;
  const auto sock = dir / "api.sock";
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  auto server = must_listen(sock, [&](const HttpRequest& r) {
    std::unique_lock lock(mu);
    // A deliberate delay past the client's timeout, bounded in case the test fails.
    cv.wait_for(lock, 20s, [&] { return release; });
    return echo(r);
  });
  const auto t0 = Clock::now();
  auto r = http_request(sock, "GET", "/slow", {}, 300ms);
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ETIMEDOUT) << r.error().message;
  EXPECT_NE(r.error().message.find("300 ms"), std::string::npos);
  EXPECT_LT(took, 5s);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
}

TEST(HttpClient, RejectsARelativePath) {
  auto r = http_request("/nonexistent.sock", "GET", "api/v1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EINVAL);
}

TEST(HttpClient, UrlEncodeRoundTrips) {
  EXPECT_EQ(url_encode("/a b"), "%2Fa%20b");
  EXPECT_EQ(url_encode("AZaz09-._~"), "AZaz09-._~");
  TempDir dir;
  auto server = must_listen(dir / "api.sock");
  const std::string nasty = "/mnt/a b/ü?&=#%+";
  auto r = http_request(dir / "api.sock", "GET", "/q?v=" + url_encode(nasty));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(body_of(r)["query"]["v"], nasty);
}

// ---- TCP (the metrics endpoint) ----

TEST(HttpServer, ListensOnLoopbackTcpOnly) {
  auto server = HttpServer::listen_tcp("127.0.0.1:0", echo);
  ASSERT_TRUE(server.ok()) << server.error().message;
  const auto& endpoint = (*server)->endpoint();
  EXPECT_EQ(endpoint.rfind("127.0.0.1:", 0), 0u);
  EXPECT_NE(endpoint, "127.0.0.1:0");
  auto r = http_request_tcp(endpoint, "GET", "/api/v1/metrics?id=%2Fa");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(body_of(r)["query"]["id"], "/a");

  auto any = HttpServer::listen_tcp("0.0.0.0:0", echo);
  ASSERT_FALSE(any.ok());
  EXPECT_EQ(any.error().code, EACCES);
  HttpServerOptions allow;
  allow.allow_non_loopback = true;
  auto allowed = HttpServer::listen_tcp("0.0.0.0:0", echo, allow);
  EXPECT_TRUE(allowed.ok()) << allowed.error().message;

  auto local = HttpServer::listen_tcp("localhost:0", echo);
  ASSERT_TRUE(local.ok()) << local.error().message;
  auto v6 = HttpServer::listen_tcp("[::1]:0", echo);
  if (v6.ok()) {
    EXPECT_EQ((*v6)->endpoint().rfind("[::1]:", 0), 0u);
    auto r6 = http_request_tcp((*v6)->endpoint(), "GET", "/v6");
    ASSERT_TRUE(r6.ok()) << r6.error().message;
    EXPECT_EQ(body_of(r6)["path"], "/v6");
  }
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", ":80", "127.0.0.1:x"}) {
    auto b = HttpServer::listen_tcp(bad, echo);
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.error().code, EINVAL) << bad;
  }
}

TEST(HttpClient, TcpConnectionRefused) {
  // A port we bound and released: nothing listens there now.
  std::string endpoint;
  {
    auto s = HttpServer::listen_tcp("127.0.0.1:0", echo);
    ASSERT_TRUE(s.ok());
    endpoint = (*s)->endpoint();
  }
  auto r = http_request_tcp(endpoint, "GET", "/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ECONNREFUSED) << r.error().message;
}

}  // namespace
}  // namespace ferry::http
