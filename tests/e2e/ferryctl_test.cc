// ferryctl as a real process, without a manager: the error lines a person gets when the manager
// is not running or its socket cannot be used, usage errors (exit 2), every --help, and every
// manager command against a stand-in system API (an HttpServer answering docs/manager-api.md's
// examples) that records what ferryctl sent.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "http/http_server.h"
#include "http/json_errors.h"
#include "support/test_support.h"

namespace ferry {
namespace {

using nlohmann::json;

struct Outcome {
  int rc = -1;
  std::string out;  // stdout only
  std::string err;  // stderr only
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

class FerryctlTest : public ::testing::Test {
 protected:
  // Runs `[prefix] ferryctl ARGS` in `cwd` with stdout and stderr kept apart.
  Outcome ctl(const std::vector<std::string>& args, const std::string& prefix = {},
              const std::string& cwd = {}) {
    std::string command = "(";
    if (!cwd.empty()) command += "cd " + shell_quote(cwd) + " && ";
    command += prefix + " " + shell_quote(test::binary_path("ferryctl"));
    for (const auto& a : args) command += " " + shell_quote(a);
    command += " 2>" + shell_quote(dir_ / "stderr") + ")";
    Outcome o;
    o.rc = test::run_shell(command, &o.out);
    o.err = test::read_file(dir_ / "stderr");
    return o;
  }

  test::TempDir dir_;
};

// ---- without any manager --------------------------------------------------------------------

TEST_F(FerryctlTest, NoSocketSaysTheManagerIsNotRunning) {
  const std::string sock = dir_ / "system.sock";
  for (const char* command : {"daemons", "records", "list", "metrics"}) {
    Outcome o = ctl({"--socket", sock, command});
    EXPECT_EQ(o.rc, 1) << command;
    EXPECT_EQ(o.err, "ferryctl: error: cannot reach ferry-snapshotter at " + sock +
                         ": no such socket (is it running? see --socket)\n")
        << command;
    EXPECT_EQ(o.out, "") << command;
  }
  // The option is also taken after the command, and the environment overrides the default.
  Outcome after = ctl({"daemons", "--socket", sock});
  EXPECT_EQ(after.rc, 1);
  EXPECT_NE(after.err.find("at " + sock + ": no such socket"), std::string::npos) << after.err;
  Outcome env = ctl({"daemons"}, "FERRY_SYSTEM_SOCKET=" + shell_quote(sock));
  EXPECT_EQ(env.rc, 1);
  EXPECT_NE(env.err.find("at " + sock + ": no such socket"), std::string::npos) << env.err;
}

TEST_F(FerryctlTest, StaleSocketSaysConnectionRefused) {
  const std::string sock = dir_ / "system.sock";
  {
    // Bound, never listened on, closed: what a manager killed with -9 leaves behind.
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(fd);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  }
  Outcome o = ctl({"--socket", sock, "daemons"});
  EXPECT_EQ(o.rc, 1);
  EXPECT_EQ(
      o.err.rfind("ferryctl: error: cannot reach ferry-snapshotter at " + sock + ": connection refused", 0),
      0U)
      << o.err;
  EXPECT_NE(o.err.find("stale"), std::string::npos) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << "one line: " << o.err;

  const std::string file = dir_ / "not-a-socket";
  std::ofstream(file) << "x";
  Outcome f = ctl({"--socket", file, "list"});
  EXPECT_EQ(f.rc, 1);
  EXPECT_EQ(f.err,
            "ferryctl: error: cannot reach ferry-snapshotter at " + file + ": not a socket (see --socket)\n");
}

TEST_F(FerryctlTest, SocketOfAnotherUserSaysPermissionDenied) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run ferryctl as another user";
  if (test::run_shell("command -v setpriv >/dev/null") != 0) GTEST_SKIP() << "setpriv (util-linux) not installed";
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";
  if (test::run_shell(as_nobody + " test -x " + shell_quote(test::binary_path("ferryctl"))) != 0) {
    GTEST_SKIP() << "the build directory is not accessible to user nobody";
  }
  // A live server on a root-only socket in a directory everyone may enter: connect(2) is what
  // refuses (EACCES), as for /run/ferry/system.sock.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  const std::string sock = dir_ / "system.sock";
  auto server = http::HttpServer::listen_unix(
      sock, [](const http::HttpRequest&) { return http::json_ok(json::array()); });
  ASSERT_TRUE(server.ok()) << server.error().message;
  Outcome o = ctl({"--socket", sock, "daemons"}, as_nobody);
  EXPECT_EQ(o.rc, 1);
  EXPECT_EQ(o.err, "ferryctl: error: cannot reach ferry-snapshotter at " + sock +
                       ": permission denied: run as root or the socket's owner\n");
  // The same socket works for root.
  EXPECT_EQ(ctl({"--socket", sock, "daemons"}).rc, 0);
}

TEST_F(FerryctlTest, UsageErrorsExitTwo) {
  const std::vector<std::vector<std::string>> wrong = {
      {},
      {"bogus"},
      {"daemons", "--bogus"},
      {"records", "--limit", "0"},
      {"records", "--limit", "many"},
      {"upgrade"},
      {"mount"},
      {"mount", "/mnt/x"},
      {"mount", "/mnt/x", "/img", "--blob", "/b", "--blob-dir", "/d"},
      {"mount", "/mnt/x", "/img", "--config", "/c", "--blob", "/b"},
      {"umount"},
      {"list", "extra"},
      {"supervisor"},
  };
  for (const auto& args : wrong) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    Outcome o = ctl(args);
    EXPECT_EQ(o.rc, 2) << joined << "\n" << o.err;
    EXPECT_NE(o.err.find("--help"), std::string::npos) << joined << "\n" << o.err;
  }
}

TEST_F(FerryctlTest, EveryCommandHasHelp) {
  Outcome top = ctl({"--help"});
  ASSERT_EQ(top.rc, 0) << top.err;
  for (const char* word :
       {"daemons", "records", "upgrade", "mount", "umount", "list", "metrics", "supervisor", "--socket",
        "/run/ferry/system.sock", "FERRY_SYSTEM_SOCKET", "Exit status"}) {
    EXPECT_NE(top.out.find(word), std::string::npos) << word << "\n" << top.out;
  }
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
      {"daemons", {"--json", "RECOVERING", "FAILOVERS"}},
      {"records", {"--daemon", "--limit", "--json", "failover"}},
      {"upgrade", {"PATH", "--version", "--timeout", "rollback"}},
      {"mount", {"MOUNTPOINT", "BOOTSTRAP", "--config", "--blob", "--blob-dir"}},
      {"umount", {"MOUNTPOINT"}},
      {"list", {"--json", "BOOTSTRAP"}},
      {"metrics", {"ferry_events_total"}},
      {"supervisor", {"--socket", "TAKEOVER"}},
  };
  for (const auto& [command, words] : expected) {
    Outcome o = ctl({command, "--help"});
    EXPECT_EQ(o.rc, 0) << command << "\n" << o.err;
    for (const auto& word : words) EXPECT_NE(o.out.find(word), std::string::npos) << command << ": " << word;
  }
  Outcome version = ctl({"--version"});
  EXPECT_EQ(version.rc, 0);
  EXPECT_EQ(version.out.rfind("ferryctl ", 0), 0U) << version.out;
}

// ---- against a stand-in system API ------------------------------------------------------------

// Answers docs/manager-api.md's examples and records every request.
class FakeManager {
 public:
  explicit FakeManager(const std::string& socket) {
    auto server =
        http::HttpServer::listen_unix(socket, [this](const http::HttpRequest& r) { return handle(r); });
    if (!server.ok()) throw std::runtime_error(server.error().message);
    server_ = std::move(*server);
  }
  std::vector<http::HttpRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  http::HttpRequest last() {
    std::lock_guard lock(mu_);
    return requests_.empty() ? http::HttpRequest{} : requests_.back();
  }
  void fail_next(int status, std::string body) {
    std::lock_guard lock(mu_);
    fail_status_ = status;
    fail_body_ = std::move(body);
  }

  static json daemons() {
    return json::parse(R"([
      {"id": "d3f9a1c2b4e5", "pid": 4242, "api_socket": "/var/lib/ferry/daemons/d3f9a1c2b4e5/api.sock",
       "supervisor_path": "/var/lib/ferry/supervisor/d3f9a1c2b4e5.sock", "mountpoint": "/mnt/app",
       "instances": {"/mnt/app": {"mountpoint": "/mnt/app", "bootstrap": "/img/app.erofs", "daemon_path": "/"}},
       "state": "RUNNING", "binary": "/usr/bin/ferryd", "version": "0.1.0", "recover_policy": "failover",
       "failovers": 3, "restarts": 0, "upgrades": 1},
      {"id": "77aa", "pid": 17, "mountpoint": "/mnt/a-much-longer-mountpoint", "instances": {},
       "state": "DEAD", "binary": "/usr/bin/ferryd", "version": "0.2.0+next", "recover_policy": "none",
       "failovers": 0, "restarts": 12, "upgrades": 0}])");
  }
  static json records() {
    return json::parse(R"([
      {"seq": 16, "time": "2026-11-25T14:02:11.408Z", "daemon_id": "d3f9a1c2b4e5", "event": "death",
       "old_pid": 4242, "new_pid": 0, "duration_ms": 0, "ok": true, "detail": "killed by signal 9"},
      {"seq": 17, "time": "2026-11-25T14:02:11.412Z", "daemon_id": "d3f9a1c2b4e5", "event": "failover",
       "old_pid": 4242, "new_pid": 4301, "duration_ms": 3.94, "ok": true,
       "detail": "took over state of 5431 bytes; resend"}])");
  }

 private:
  http::HttpResponse handle(const http::HttpRequest& r) {
    std::lock_guard lock(mu_);
    requests_.push_back(r);
    if (fail_status_ != 0) {
      http::HttpResponse failed{fail_status_, fail_body_, "application/json"};
      fail_status_ = 0;
      return failed;
    }
    if (r.method == "GET" && r.path == "/api/v1/daemons") return http::json_ok(daemons());
    if (r.method == "GET" && r.path == "/api/v1/daemons/records") return http::json_ok(records());
    if (r.method == "GET" && r.path == "/api/v1/mounts") {
      return http::json_ok(json::parse(
          R"([{"mountpoint": "/mnt/app", "bootstrap": "/img/app.erofs", "daemon_id": "d3f9a1c2b4e5"}])"));
    }
    if (r.method == "POST" && r.path == "/api/v1/mounts") {
      return http::json_ok(json{{"daemon_id", "0badc0ffee00"}, {"mountpoint", "/x"}}, 201);
    }
    if (r.method == "DELETE" && r.path == "/api/v1/mounts") return http::no_content();
    if (r.method == "PUT" && r.path == "/api/v1/nydusd/upgrade") {
      return http::json_ok(json::parse(R"({"nydusd_path": "/ABS/ferryd", "version": "0.2.0", "daemons": [
        {"id": "d3f9a1c2b4e5", "old_pid": 4301, "new_pid": 4420, "duration_ms": 41.23},
        {"id": "77aa", "old_pid": 17, "new_pid": 18, "duration_ms": 7}]})"));
    }
    if (r.method == "GET" && r.path == "/metrics") {
      return http::HttpResponse{200, "# TYPE ferry_daemons gauge\nferry_daemons{state=\"RUNNING\"} 1\n",
                                "text/plain; version=0.0.4"};
    }
    return http::json_error(404, "NotFound", "no such endpoint: " + r.method + " " + r.path);
  }

  std::mutex mu_;
  std::vector<http::HttpRequest> requests_;
  int fail_status_ = 0;
  std::string fail_body_;
  std::unique_ptr<http::HttpServer> server_;
};

class FerryctlFakeManagerTest : public FerryctlTest {
 protected:
  std::string sock_ = dir_ / "system.sock";
  FakeManager manager_{sock_};
  Outcome run_ctl(std::vector<std::string> args, const std::string& cwd = {}) {
    args.insert(args.begin(), {"--socket", sock_});
    return ctl(args, {}, cwd);
  }
};

TEST_F(FerryctlFakeManagerTest, DaemonsTableIsAlignedAndJsonIsTheServers) {
  Outcome o = run_ctl({"daemons"});
  ASSERT_EQ(o.rc, 0) << o.err;
  auto table = test::lines_of(o.out);
  ASSERT_EQ(table.size(), 3U) << o.out;
  EXPECT_EQ(table[0].rfind("ID", 0), 0U);
  // Every column starts at the same offset on every line.
  const size_t mount_col = table[0].find("MOUNTPOINT");
  const size_t state_col = table[0].find("STATE");
  ASSERT_NE(mount_col, std::string::npos);
  EXPECT_EQ(table[1].find("/mnt/app"), mount_col) << o.out;
  EXPECT_EQ(table[2].find("/mnt/a-much-longer-mountpoint"), mount_col) << o.out;
  EXPECT_EQ(table[1].find("RUNNING"), state_col) << o.out;
  EXPECT_EQ(table[2].find("DEAD"), state_col) << o.out;
  for (const char* cell : {"d3f9a1c2b4e5", "4242", "0.1.0", "failover", "0.2.0+next", "none", "12"}) {
    EXPECT_NE(o.out.find(cell), std::string::npos) << cell << "\n" << o.out;
  }
  for (const auto& line : table) EXPECT_NE(line.back(), ' ') << "trailing blanks: '" << line << "'";

  Outcome j = run_ctl({"daemons", "--json"});
  ASSERT_EQ(j.rc, 0) << j.err;
  EXPECT_EQ(json::parse(j.out), FakeManager::daemons());
  EXPECT_NE(j.out.find("\n  "), std::string::npos) << "indented: " << j.out;
}

TEST_F(FerryctlFakeManagerTest, RecordsPassFiltersAndPrintDashesForWhatDoesNotApply) {
  Outcome o = run_ctl({"records", "--daemon", "d3f9a1c2b4e5", "--limit", "5"});
  ASSERT_EQ(o.rc, 0) << o.err;
  auto request = manager_.last();
  EXPECT_EQ(request.path, "/api/v1/daemons/records");
  EXPECT_EQ(request.query["daemon"], "d3f9a1c2b4e5");
  EXPECT_EQ(request.query["limit"], "5");
  auto table = test::lines_of(o.out);
  ASSERT_EQ(table.size(), 3U) << o.out;
  for (const char* header : {"TIME", "DAEMON", "EVENT", "OLD-PID", "NEW-PID", "MS", "OK", "DETAIL"}) {
    EXPECT_NE(table[0].find(header), std::string::npos) << header;
  }
  EXPECT_NE(table[1].find("death"), std::string::npos);
  EXPECT_NE(table[1].find(" - "), std::string::npos) << "new pid and duration do not apply: " << table[1];
  EXPECT_NE(table[2].find("4301"), std::string::npos);
  EXPECT_NE(table[2].find("3.9"), std::string::npos);
  EXPECT_NE(table[2].find("yes"), std::string::npos);
  EXPECT_EQ(table[2].find("took over state"), table[0].find("DETAIL"));

  Outcome j = run_ctl({"records", "--json"});
  ASSERT_EQ(j.rc, 0) << j.err;
  EXPECT_EQ(json::parse(j.out), FakeManager::records());
  EXPECT_EQ(manager_.last().query.count("daemon"), 0U);
}

TEST_F(FerryctlFakeManagerTest, UpgradeSendsAnAbsolutePathAndPrintsOneLinePerDaemon) {
  Outcome o = run_ctl({"upgrade", "bin/ferryd-new", "--version", "0.2.0"}, dir_.path());
  ASSERT_EQ(o.rc, 0) << o.err;
  auto request = manager_.last();
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.path, "/api/v1/nydusd/upgrade");
  json body = json::parse(request.body);
  EXPECT_EQ(body["nydusd_path"], dir_ / "bin/ferryd-new");
  EXPECT_EQ(body["version"], "0.2.0");
  EXPECT_EQ(o.out, "d3f9a1c2b4e5: pid 4301 -> 4420 in 41.2 ms\n77aa: pid 17 -> 18 in 7.0 ms\n");

  // A refused upgrade: the server's message, one line, exit 1.
  manager_.fail_next(400, R"({"code":"BadRequest","message":"'/x/ferryd' is not executable"})");
  Outcome refused = run_ctl({"upgrade", "/x/ferryd"});
  EXPECT_EQ(refused.rc, 1);
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err,
            "ferryctl: error: '/x/ferryd' is not executable (HTTP 400 Bad Request from ferry-snapshotter)\n");
  EXPECT_EQ(json::parse(manager_.last().body).count("version"), 0U);
}

TEST_F(FerryctlFakeManagerTest, MountBuildsTheConfigAndPrintsTheDaemonId) {
  Outcome o = run_ctl({"mount", "mnt/", "img/app.erofs", "--blob", "img/app.blob"}, dir_.path());
  ASSERT_EQ(o.rc, 0) << o.err;
  EXPECT_EQ(o.out, "0badc0ffee00\n");
  json body = json::parse(manager_.last().body);
  EXPECT_EQ(manager_.last().method, "POST");
  EXPECT_EQ(body["mountpoint"], dir_ / "mnt");
  EXPECT_EQ(body["bootstrap"], dir_ / "img/app.erofs");
  EXPECT_EQ(body["config"]["device"]["backend"]["type"], "localfs");
  EXPECT_EQ(body["config"]["device"]["backend"]["config"]["blob_file"], dir_ / "img/app.blob");

  ASSERT_EQ(run_ctl({"mount", "/m", "/i", "--blob-dir", "/blobs"}).rc, 0);
  EXPECT_EQ(json::parse(manager_.last().body)["config"]["device"]["backend"]["config"]["dir"], "/blobs");

  const json config = {{"device", {{"backend", {{"type", "localfs"}, {"config", {{"dir", "/elsewhere"}}}}}}}};
  std::ofstream(dir_ / "config.json") << config.dump();
  ASSERT_EQ(run_ctl({"mount", "/m", "/i", "--config", dir_ / "config.json"}).rc, 0);
  EXPECT_EQ(json::parse(manager_.last().body)["config"], config);

  ASSERT_EQ(run_ctl({"mount", "/m", "/i"}).rc, 0);
  EXPECT_EQ(json::parse(manager_.last().body).count("config"), 0U);

  const size_t before = manager_.requests().size();
  std::ofstream(dir_ / "bad.json") << "{not json";
  Outcome bad = run_ctl({"mount", "/m", "/i", "--config", dir_ / "bad.json"});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find("is not a JSON object"), std::string::npos) << bad.err;
  Outcome missing = run_ctl({"mount", "/m", "/i", "--config", dir_ / "missing.json"});
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("cannot read --config"), std::string::npos) << missing.err;
  EXPECT_EQ(manager_.requests().size(), before) << "nothing sent for a bad config";

  manager_.fail_next(409, R"({"code":"Conflict","message":"/m is already mounted"})");
  Outcome taken = run_ctl({"mount", "/m", "/i"});
  EXPECT_EQ(taken.rc, 1);
  EXPECT_EQ(taken.err, "ferryctl: error: /m is already mounted (HTTP 409 Conflict from ferry-snapshotter)\n");
}

TEST_F(FerryctlFakeManagerTest, UmountListAndMetrics) {
  Outcome u = run_ctl({"umount", "a dir/"}, dir_.path());
  ASSERT_EQ(u.rc, 0) << u.err;
  EXPECT_EQ(u.out, "");
  auto request = manager_.last();
  EXPECT_EQ(request.method, "DELETE");
  EXPECT_EQ(request.path, "/api/v1/mounts");
  EXPECT_EQ(request.query["mountpoint"], dir_ / "a dir");

  manager_.fail_next(404, R"({"code":"NotFound","message":"nothing is mounted at /nope"})");
  Outcome missing = run_ctl({"umount", "/nope"});
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("nothing is mounted at /nope (HTTP 404"), std::string::npos) << missing.err;

  Outcome l = run_ctl({"list"});
  ASSERT_EQ(l.rc, 0) << l.err;
  auto table = test::lines_of(l.out);
  ASSERT_EQ(table.size(), 2U) << l.out;
  EXPECT_EQ(table[0].find("BOOTSTRAP"), table[1].find("/img/app.erofs"));
  EXPECT_EQ(table[0].find("DAEMON"), table[1].find("d3f9a1c2b4e5"));
  Outcome lj = run_ctl({"list", "--json"});
  ASSERT_EQ(lj.rc, 0);
  EXPECT_EQ(json::parse(lj.out)[0]["daemon_id"], "d3f9a1c2b4e5");

  Outcome m = run_ctl({"metrics"});
  ASSERT_EQ(m.rc, 0) << m.err;
  EXPECT_EQ(m.out, "# TYPE ferry_daemons gauge\nferry_daemons{state=\"RUNNING\"} 1\n");

  // Something that is not the manager (a non-JSON error page).
  manager_.fail_next(500, "upstream exploded\n");
  Outcome odd = run_ctl({"daemons"});
  EXPECT_EQ(odd.rc, 1);
  EXPECT_EQ(odd.err,
            "ferryctl: error: upstream exploded (HTTP 500 Internal Server Error from ferry-snapshotter)\n");
}

}  // namespace
}  // namespace ferry
