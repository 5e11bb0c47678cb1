// ferryd's control plane over its real HTTP API: the state machine, start-up modes, the
// shared daemon's image management under load, every error path, and socket safety.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "daemon/daemon_harness.h"

namespace ferry::test {
namespace {

using nlohmann::json;

class DaemonApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = make_sample_image(dir_.path(), "img", 24, 11);
    mnt_ = dir_ / "mnt";
    std::filesystem::create_directories(mnt_);
    sock_ = dir_ / "api.sock";
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "--- ferryd log ---\n" << read_file(dir_ / "ferryd.log") << "\n";
  }

  Ferryd start_dedicated(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--mountpoint", mnt_,  "--bootstrap", image_.meta, "--config",     image_.config_path,
        "--apisock",    sock_, "--id",        "d1",        "--supervisor", dir_ / "sup.sock"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ferryd::start(args, dir_ / "ferryd.log");
  }

  TempDir dir_;
  MountGuard guard_{dir_ / "mnt"};
  SampleImage image_;
  std::string mnt_;
  std::string sock_;
};

TEST_F(DaemonApiTest, NormalStartMountsAndRunsAndReportsItself) {
  Ferryd d = start_dedicated();
  ASSERT_TRUE(wait_state(sock_, "RUNNING")) << "daemon did not reach RUNNING";
  EXPECT_TRUE(is_mounted(mnt_, "fuse"));
  auto r = api(sock_, "GET", "/api/v1/daemon");
  ASSERT_EQ(r.status, 200);
  json j = json::parse(r.body);
  EXPECT_EQ(j["id"], "d1");
  EXPECT_EQ(j["state"], "RUNNING");
  EXPECT_EQ(j["supervisor"], dir_ / "sup.sock");
  EXPECT_FALSE(j["version"]["package_ver"].get<std::string>().empty());
  EXPECT_NE(j["version"]["git_commit"], "");
  EXPECT_NE(j["version"]["build_time"], "");
  EXPECT_NE(j["version"]["profile"], "");
  ASSERT_TRUE(j["backend_collection"].contains("/"));
  EXPECT_EQ(j["backend_collection"]["/"]["source"], image_.meta);
  EXPECT_EQ(j["backend_collection"]["/"]["mountpoint"], "/");
  EXPECT_EQ(read_file(mnt_ + "/" + image_.files[3]), read_file(image_.tree + "/" + image_.files[3]));
}

TEST_F(DaemonApiTest, IllegalEventsAreRefusedNamingStateAndEventAndChangeNothing) {
  Ferryd d = start_dedicated();
  ASSERT_TRUE(wait_state(sock_, "RUNNING"));
  auto r = api(sock_, "PUT", "/api/v1/daemon/start");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("Start"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("RUNNING"), std::string::npos) << r.body;
  r = api(sock_, "PUT", "/api/v1/daemon/fuse/takeover");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("Takeover"), std::string::npos) << r.body;
  EXPECT_EQ(daemon_state(sock_), "RUNNING");
  EXPECT_EQ(read_file(mnt_ + "/" + image_.files[0]), read_file(image_.tree + "/" + image_.files[0]));
}

TEST_F(DaemonApiTest, SigtermStopsUnmountsAndExitsZero) {
  Ferryd d = start_dedicated();
  ASSERT_TRUE(wait_state(sock_, "RUNNING"));
  d.process().signal(SIGTERM);
  int st = d.process().wait_exit(10s).value_or(-1);
  ASSERT_NE(st, -1) << "ferryd did not exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_FALSE(is_mounted(mnt_));
}

TEST_F(DaemonApiTest, ExitLeavesTheMountAndExitsZero) {
  Ferryd d = start_dedicated();
  ASSERT_TRUE(wait_state(sock_, "RUNNING"));
  auto r = api(sock_, "PUT", "/api/v1/daemon/exit");
  EXPECT_EQ(r.status, 204) << r.body;
  int st = d.process().wait_exit(10s).value_or(-1);
  ASSERT_NE(st, -1);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_TRUE(is_mounted(mnt_, "fuse")) << "exit must not unmount";
  // It leaves without running its teardown, but not without closing its API and its log.
  EXPECT_FALSE(std::filesystem::exists(sock_)) << "the API socket file stays after exit";
  EXPECT_NE(read_file(dir_ / "ferryd.log").find("exited; the mount at"), std::string::npos)
      << "the log's last line was not flushed";
}

TEST_F(DaemonApiTest, UpgradeModeWaitsInInitAndMountsNothing) {
  Ferryd d = start_dedicated({"--upgrade"});
  ASSERT_TRUE(wait_state(sock_, "INIT"));
  EXPECT_FALSE(is_mounted(mnt_));
  EXPECT_EQ(api(sock_, "PUT", "/api/v1/daemon/start").status, 400);
  EXPECT_EQ(api(sock_, "PUT", "/api/v1/daemon/exit").status, 400);
  EXPECT_EQ(api(sock_, "PUT", "/api/v1/daemon/fuse/sendfd").status, 503);
  EXPECT_EQ(daemon_state(sock_), "INIT");
  d.process().signal(SIGTERM);
  int st = d.process().wait_exit(10s).value_or(-1);
  ASSERT_NE(st, -1);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST_F(DaemonApiTest, StopThenStartAgainAndStopFromReadyUnmounts) {
  Ferryd d = start_dedicated();
  ASSERT_TRUE(wait_state(sock_, "RUNNING"));
  // RUNNING --Stop--> READY is only reachable through the signal path in nydusd; the API
  // exposes start and exit. The signal path: SIGTERM = Stop, Stop.
  d.process().signal(SIGINT);
  int st = d.process().wait_exit(10s).value_or(-1);
  ASSERT_NE(st, -1);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_FALSE(is_mounted(mnt_));
}

class SharedDaemonTest : public DaemonApiTest {
 protected:
  void SetUp() override {
    DaemonApiTest::SetUp();
    for (int i = 0; i < 4; ++i) {
      images_.push_back(
          make_sample_image(dir_.path(), "s" + std::to_string(i), 12, 100 + static_cast<uint64_t>(i)));
    }
    daemon_ = Ferryd::start({"--mountpoint", mnt_, "--apisock", sock_}, dir_ / "ferryd.log");
    ASSERT_TRUE(wait_state(sock_, "RUNNING"));
  }
  http::HttpResponse attach(const std::string& sub, const SampleImage& img,
                            const std::string& method = "POST") {
    json body = {{"source", img.meta}, {"fs_type", "rafs"}, {"config", img.config}};
    return api(sock_, method, "/api/v1/mount?mountpoint=" + sub, body.dump());
  }
  std::vector<SampleImage> images_;
  Ferryd daemon_;
};

TEST_F(SharedDaemonTest, ImagesAttachDetachAndReplaceWhileOthersAreRead) {
  ASSERT_EQ(attach("/a", images_[0]).status, 204);
  ASSERT_EQ(attach("/b", images_[1]).status, 204);
  ASSERT_EQ(attach("/c", images_[2]).status, 204);
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(mnt_)) names.insert(e.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"a", "b", "c"}));

  Readers readers(mnt_ + "/a", images_[0].tree, images_[0].files, {.threads = 2});
  ASSERT_TRUE(readers.wait_progress(50));
  // A process holding a file of /c open across the detach keeps reading the detached image.
  std::string held = images_[2].files[5];
  int fd = ::open((mnt_ + "/c/" + held).c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(api(sock_, "DELETE", "/api/v1/mount?mountpoint=/c").status, 204);
  // The daemon told the kernel: new lookups stop finding it at once (invalidation_test.cc
  // tests that with every name cached).
  EXPECT_FALSE(std::filesystem::exists(mnt_ + "/c/" + held)) << "new lookups must not find a detached image";
  std::string want = read_file(images_[2].tree + "/" + held);
  alignas(4096) static char buf[1 << 22];
  ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  ::close(fd);
  ASSERT_EQ(n, static_cast<ssize_t>(want.size())) << std::strerror(errno);
  std::string got_bytes(buf, static_cast<size_t>(n));
  EXPECT_TRUE(got_bytes == want) << "held file differs from the source after detach, first at byte "
                                 << (std::mismatch(want.begin(), want.end(), got_bytes.begin()).first -
                                     want.begin());

  // Replace /b with another image: its content changes, /a's readers see nothing.
  ASSERT_EQ(attach("/b", images_[3], "PUT").status, 204);
  EXPECT_EQ(read_file(mnt_ + "/b/" + images_[3].files[1]),
            read_file(images_[3].tree + "/" + images_[3].files[1]));
  ASSERT_TRUE(readers.wait_progress(50));
  readers.stop();
  EXPECT_EQ(readers.errors(), 0U) << ::testing::PrintToString(readers.failures());
  EXPECT_EQ(readers.mismatches(), 0U) << ::testing::PrintToString(readers.failures());

  json info = json::parse(api(sock_, "GET", "/api/v1/daemon").body);
  EXPECT_EQ(info["backend_collection"].size(), 2U);
  EXPECT_EQ(info["backend_collection"]["/b"]["source"], images_[3].meta);
  auto m = api(sock_, "GET", "/api/v1/metrics?id=/a");
  ASSERT_EQ(m.status, 200);
  json mj = json::parse(m.body);
  EXPECT_GT(mj["requests"].get<uint64_t>(), 0U);
  EXPECT_GT(mj["bytes_read"].get<uint64_t>(), 0U);
  json total = json::parse(api(sock_, "GET", "/api/v1/metrics").body);
  EXPECT_GE(total["requests"].get<uint64_t>(), mj["requests"].get<uint64_t>());
  EXPECT_EQ(api(sock_, "GET", "/api/v1/metrics/inflight").status, 204);
}

TEST_F(SharedDaemonTest, BadRequestsNameTheProblemAndChangeNothing) {
  ASSERT_EQ(attach("/a", images_[0]).status, 204);
  std::string before = json::parse(api(sock_, "GET", "/api/v1/daemon").body)["backend_collection"].dump();
  struct Case {
    std::string method, path, body;
    int status;
    std::string word;
  };
  json good = {{"source", images_[1].meta}, {"config", images_[1].config}};
  std::vector<Case> cases = {
      {"POST", "/api/v1/mount", good.dump(), 400, "mountpoint"},
      {"POST", "/api/v1/mount?mountpoint=/x", "{not json", 400, "JSON"},
      {"POST", "/api/v1/mount?mountpoint=/x", "[]", 400, "object"},
      {"POST", "/api/v1/mount?mountpoint=/x", R"({"config": "{}"})", 400, "source"},
      {"POST", "/api/v1/mount?mountpoint=/x", R"({"source": "relative/path"})", 400, "absolute"},
      {"POST", "/api/v1/mount?mountpoint=/a/../..", good.dump(), 400, "mountpoint"},
      {"POST", "/api/v1/mount?mountpoint=x", good.dump(), 400, "mountpoint"},
      {"POST", "/api/v1/mount?mountpoint=/x", R"({"source": "/nonexistent/image"})", 404,
       "/nonexistent/image"},
      {"POST", "/api/v1/mount?mountpoint=/x", json({{"source", images_[1].tree + "/d0/f0"}}).dump(), 400, ""},
      {"POST", "/api/v1/mount?mountpoint=/x",
       json({{"source", images_[1].meta}, {"config", R"({"device":{"backend":{"type":"oss"}}})"}}).dump(),
       400, "oss"},
      {"POST", "/api/v1/mount?mountpoint=/a", good.dump(), 409, "/a"},
      {"DELETE", "/api/v1/mount?mountpoint=/nope", "", 404, "/nope"},
      {"GET", "/api/v1/nothing-here", "", 404, "nothing-here"},
      {"DELETE", "/api/v1/daemon", "", 400, "DELETE"},
      {"GET", "/api/v1/metrics?id=/nope", "", 404, "/nope"},
  };
  for (const auto& c : cases) {
    auto r = api(sock_, c.method, c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.path << " " << c.body << " -> " << r.body;
    if (r.status >= 400 && r.status != 404) {
      auto j = json::parse(r.body, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << r.body;
      EXPECT_TRUE(j.contains("code") && j.contains("message")) << r.body;
    }
    if (!c.word.empty()) {
      EXPECT_NE(r.body.find(c.word), std::string::npos) << c.path << " -> " << r.body;
    }
  }
  std::string after = json::parse(api(sock_, "GET", "/api/v1/daemon").body)["backend_collection"].dump();
  EXPECT_EQ(before, after);
}

int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(SharedDaemonTest, AThousandMalformedRequestsLeaveTheDaemonServing) {
  ASSERT_EQ(attach("/a", images_[0]).status, 204);
  std::mt19937_64 rng(5);
  std::vector<std::string> templates = {
      "GARBAGE\r\n\r\n",
      "GET /api/v1/daemon HTTP/1.1\r\nHost: x\r\n",  // truncated
      "PUT /api/v1/mount?mountpoint=/z HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
      "BREW /api/v1/daemon HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /api/v1/daemon HTTP/1.1\r\nX-Big: " + std::string(100000, 'a') + "\r\n\r\n",
      "POST /api/v1/mount?mountpoint=/q HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
      "GET /\x01\x02\x03 HTTP/9.9\r\n\r\n",
  };
  for (int i = 0; i < 1000; ++i) {
    int fd = connect_unix(sock_);
    ASSERT_GE(fd, 0) << "daemon stopped accepting at request " << i;
    std::string msg = templates[static_cast<size_t>(i) % templates.size()];
    if (i % 5 == 4) {
      msg.resize(rng() % 300);
      for (auto& c : msg) c = static_cast<char>(rng());
    }
    [[maybe_unused]] ssize_t w = ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL);
    if (i % 3 == 0) {
      char buf[512];
      timeval tv{0, 20000};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      [[maybe_unused]] ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    }
    ::close(fd);
  }
  EXPECT_EQ(daemon_state(sock_), "RUNNING");
  EXPECT_EQ(read_file(mnt_ + "/a/" + images_[0].files[2]),
            read_file(images_[0].tree + "/" + images_[0].files[2]));
  EXPECT_TRUE(daemon_.process().running());
}

TEST_F(DaemonApiTest, ApiSocketIsPrivateAndASecondDaemonIsRefused) {
  Ferryd d = start_dedicated();
  ASSERT_TRUE(wait_state(sock_, "RUNNING"));
  struct stat st {};
  ASSERT_EQ(::lstat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  std::string other_mnt = dir_ / "mnt2";
  std::filesystem::create_directories(other_mnt);
  MountGuard g(other_mnt);
  Ferryd second = Ferryd::start({"--mountpoint", other_mnt, "--bootstrap", image_.meta, "--config",
                                 image_.config_path, "--apisock", sock_},
                                dir_ / "second.log");
  int rc = second.process().wait_exit(10s).value_or(-1);
  ASSERT_NE(rc, -1) << "a second daemon on a live socket must exit";
  EXPECT_NE(WEXITSTATUS(rc), 0);
  EXPECT_NE(read_file(dir_ / "second.log").find(sock_), std::string::npos) << read_file(dir_ / "second.log");
  EXPECT_FALSE(is_mounted(other_mnt));
  EXPECT_EQ(daemon_state(sock_), "RUNNING");
}

TEST_F(DaemonApiTest, AStaleSocketFileIsReplaced) {
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock_.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);  // leaves a socket file nobody listens on
  }
  Ferryd d = start_dedicated();
  EXPECT_TRUE(wait_state(sock_, "RUNNING"));
}

}  // namespace
}  // namespace ferry::test
