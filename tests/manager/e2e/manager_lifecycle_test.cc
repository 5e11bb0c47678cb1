// ferry-snapshotter's life cycle end to end: mount and umount through the system API, request
// validation, the restart and none recovery policies, a refused configuration, and SIGTERM
// leaving the daemons serving for a successor manager.
#include <fcntl.h>
#include <sys/stat.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "common/unique_fd.h"
#include "manager/e2e/manager_harness.h"

namespace ferry::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// An error a reader of a mount whose daemon is gone may see, instead of hanging.
bool is_disconnect_error(const std::string& text) {
  for (int e : {ENOTCONN, ECONNABORTED, EIO}) {
    if (text.find(std::strerror(e)) != std::string::npos) return true;
  }
  return false;
}

TEST(ManagerLifecycle, MountListReadUmount) {
  ManagerHarness h;
  SampleImage img = h.make_image("img", 10, 1);
  std::string mnt = h.make_mountpoint("a");
  ASSERT_TRUE(h.start());
  EXPECT_TRUE(h.daemons().empty());

  std::string id = h.mount(mnt, img);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(h.wait_daemon_state(id, "RUNNING")) << h.daemons().dump(1);
  EXPECT_TRUE(is_mounted(mnt, "fuse"));
  for (const auto& f : img.files) {
    EXPECT_EQ(read_file(mnt + "/" + f), read_file(img.tree + "/" + f)) << f;
  }

  auto d = h.daemon(id);
  pid_t pid = h.daemon_pid(id);
  EXPECT_TRUE(process_alive(pid));
  EXPECT_EQ(d.value("mountpoint", ""), mnt) << d.dump();
  EXPECT_EQ(d.value("binary", ""), binary_path("ferryd")) << d.dump();
  EXPECT_FALSE(d.value("version", "").empty()) << d.dump();
  EXPECT_EQ(d.value("recover_policy", ""), "failover") << d.dump();
  EXPECT_EQ(d.value("supervisor_path", ""), h.root() + "/supervisor/" + id + ".sock") << d.dump();
  EXPECT_EQ(d.value("api_socket", "").rfind(h.root() + "/daemons/" + id + "/", 0), 0U) << d.dump();
  ASSERT_TRUE(d.contains("instances") && d["instances"].contains(mnt)) << d.dump();
  EXPECT_EQ(d["instances"][mnt].value("bootstrap", ""), img.meta);
  for (const char* counter : {"failovers", "restarts", "upgrades"})
    EXPECT_EQ(d.value(counter, -1), 0) << counter;
  // The daemon's own API answers at the socket the manager reports.
  EXPECT_EQ(ferry::test::daemon_state(d.value("api_socket", "")), "RUNNING");

  auto mounts = h.request("GET", "/api/v1/mounts");
  ASSERT_EQ(mounts.status, 200) << mounts.body;
  ASSERT_EQ(mounts.json.size(), 1U) << mounts.body;
  EXPECT_EQ(mounts.json[0].value("mountpoint", ""), mnt);
  EXPECT_EQ(mounts.json[0].value("bootstrap", ""), img.meta);
  EXPECT_EQ(mounts.json[0].value("daemon_id", ""), id);

  auto starts = h.records_of("start", id);
  ASSERT_EQ(starts.size(), 1U) << h.records().dump(1);
  EXPECT_EQ(starts[0].value("new_pid", int64_t{0}), pid);
  std::string text = h.metrics();
  EXPECT_NE(text.find("ferry_daemons{state=\"RUNNING\"} 1"), std::string::npos) << text;
  EXPECT_EQ(h.event_counter("start"), 1) << text;

  EXPECT_EQ(h.umount(mnt), 204);
  EXPECT_FALSE(is_mounted(mnt));
  EXPECT_TRUE(wait_until([&] { return !process_alive(pid); }, 10s)) << "the dedicated daemon must stop";
  EXPECT_TRUE(h.daemons().empty()) << h.daemons().dump(1);
  EXPECT_EQ(h.records_of("stop", id).size(), 1U) << h.records().dump(1);
  EXPECT_TRUE(h.records_of("death", id).empty())
      << "a stop on purpose is not a death: " << h.records().dump(1);
  EXPECT_EQ(h.umount(mnt), 404) << "nothing is mounted there any more";
  // Stopping the manager leaves nothing of ours running.
  int st = h.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "exit status " << st;
  EXPECT_TRUE(h.our_processes().empty());
}

TEST(ManagerLifecycle, BadRequestsAreRefusedAndLeaveNothingBehind) {
  ManagerHarness h;
  SampleImage img = h.make_image("img", 4, 2);
  std::string mnt = h.make_mountpoint("a");
  std::string mnt2 = h.make_mountpoint("b");
  ASSERT_TRUE(h.start());
  json config = json::parse(img.config);
  auto body = [&](const std::string& mountpoint, const std::string& bootstrap) {
    return json{{"mountpoint", mountpoint}, {"bootstrap", bootstrap}, {"config", config}}.dump();
  };
  auto expect_error = [&](const ApiAnswer& a, int status, const std::string& what) {
    EXPECT_EQ(a.status, status) << what << ": " << a.body;
    EXPECT_TRUE(!a.message().empty()) << what << ": an error names its reason: " << a.body;
  };

  expect_error(h.mount_raw(body("relative/dir", img.meta)), 400, "relative mountpoint");
  expect_error(h.mount_raw(body(h.dir() + "/no-such-dir", img.meta)), 400, "mountpoint that does not exist");
  expect_error(h.mount_raw(json{{"mountpoint", mnt}, {"config", config}}.dump()), 400, "no bootstrap");
  expect_error(h.mount_raw(body(mnt, "relative.erofs")), 400, "relative bootstrap");
  expect_error(h.mount_raw("{\"mountpoint\": "), 400, "bad JSON");
  expect_error(h.mount_raw("[1, 2]"), 400, "JSON that is not an object");
  expect_error(h.request("DELETE", "/api/v1/mounts?mountpoint=" + http::url_encode(mnt)), 404,
               "DELETE unknown");
  expect_error(h.upgrade("relative/ferryd"), 400, "upgrade with a relative path");
  EXPECT_TRUE(h.daemons().empty()) << h.daemons().dump(1);

  // A bootstrap that does not exist: refused (4xx), or the daemon fails to come up (500):
  // either way nothing is left (no daemon listed, no process, no mount).
  auto missing = h.mount_raw(body(mnt, h.dir() + "/images/missing.erofs"));
  EXPECT_TRUE(missing.status == 400 || missing.status == 404 || missing.status == 500) << missing.body;
  EXPECT_TRUE(h.daemons().empty()) << h.daemons().dump(1);
  EXPECT_FALSE(is_mounted(mnt));
  EXPECT_EQ(h.our_processes(), std::set<pid_t>{h.manager_pid()}) << "a failed mount leaves no process";

  std::string id = h.mount(mnt, img);
  ASSERT_FALSE(id.empty());
  expect_error(h.mount_raw(body(mnt, img.meta)), 409, "duplicate mountpoint");
  EXPECT_EQ(h.daemons().size(), 1U);
  // The same image at a second mountpoint is fine.
  std::string id2 = h.mount(mnt2, img);
  EXPECT_FALSE(id2.empty());
  EXPECT_NE(id, id2);
  EXPECT_EQ(read_file(mnt2 + "/" + img.files[1]), read_file(img.tree + "/" + img.files[1]));
  EXPECT_EQ(h.umount(mnt), 204);
  EXPECT_EQ(h.umount(mnt2), 204);
}

// A daemon that refuses what it was given (a bootstrap that is not EROFS, a config naming an
// unknown backend) makes the mount a 400 carrying ferryd's own one-line reason, and the failure
// record carries it too; nothing is left behind. Both modes: a dedicated daemon refuses at its
// start (exit status 2), the shared one answers the attach with a 400.
void expect_refusals_carry_ferryds_reason(const std::string& mode) {
  ManagerHarness h(ManagerOptions().with_mode(mode));
  SampleImage img = h.make_image("img", 4, 3);
  const std::string mnt = h.make_mountpoint("m");
  const std::string not_erofs = h.dir() + "/images/not-erofs.img";
  {
    std::ofstream out(not_erofs, std::ios::binary);
    out << std::string(8192, 'x');
  }
  ASSERT_TRUE(h.start());
  const json config = json::parse(img.config);
  struct Case {
    std::string what;
    json body;
    std::string reason;  // what ferryd says, verbatim
  };
  const std::vector<Case> cases = {
      {"a bootstrap that is not EROFS",
       json{{"mountpoint", mnt}, {"bootstrap", not_erofs}, {"config", config}},
       "not an EROFS image: magic at offset 1024 is 0x78787878, expected 0xe0f5e1e2"},
      {"a config with an unknown backend type",
       json{{"mountpoint", mnt},
            {"bootstrap", img.meta},
            {"config", json{{"device", {{"backend", {{"type", "s3"}, {"config", json::object()}}}}}}}},
       "unknown backend type 's3' in device.backend.type (supported: localfs, registry)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(mode + ": " + c.what);
    const size_t failures_before = h.records_of("failure").size();
    auto a = h.mount_raw(c.body.dump());
    EXPECT_EQ(a.status, 400) << a.body;
    EXPECT_EQ(a.json.value("code", ""), "BadRequest") << a.body;
    EXPECT_NE(a.message().find(c.reason), std::string::npos) << a.body;
    auto failures = h.records_of("failure");
    ASSERT_EQ(failures.size(), failures_before + 1) << h.records().dump(1);
    EXPECT_NE(failures.back().value("detail", "").find(c.reason), std::string::npos) << failures.back().dump();
    EXPECT_FALSE(is_mounted(mnt));
    for (const auto& d : h.daemons()) EXPECT_TRUE(d["instances"].empty()) << d.dump(1);
  }
  if (mode == "dedicated") {
    EXPECT_TRUE(h.daemons().empty()) << h.daemons().dump(1);
    EXPECT_EQ(h.our_processes(), std::set<pid_t>{h.manager_pid()}) << "a refused mount leaves no process";
  }
  // The mountpoint is free again.
  EXPECT_FALSE(h.mount(mnt, img).empty());
  EXPECT_EQ(h.umount(mnt), 204);
}

TEST(ManagerLifecycle, ARefusedImageOrConfigIsA400WithFerrydsReasonDedicated) {
  expect_refusals_carry_ferryds_reason("dedicated");
}

TEST(ManagerLifecycle, ARefusedImageOrConfigIsA400WithFerrydsReasonShared) {
  expect_refusals_carry_ferryds_reason("shared");
}

// Logs will name registries and images: every file the manager and its daemons create under
// the root and the log dir is 0600 (sockets included), every directory 0700.
TEST(ManagerLifecycle, EverythingUnderTheRootAndTheLogDirIsPrivate) {
  ManagerHarness h(ManagerOptions().with_mode("shared"));
  SampleImage img = h.make_image("img", 4, 5);
  const std::string mnt = h.make_mountpoint("m");
  ASSERT_TRUE(h.start());
  ASSERT_FALSE(h.mount_running(mnt, img).empty());
  // A dedicated daemon too, in a second manager's root? One manager runs one mode: the shared
  // daemon, its standby, the records and the logs are what a root holds.
  size_t seen = 0;
  for (const std::string& top : {h.root(), h.log_dir()}) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(top, ec); it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (ec) break;
      const std::string path = it->path().string();
      if (path == h.root() + "/mnt" || path.rfind(h.root() + "/mnt/", 0) == 0) {
        it.disable_recursion_pending();  // the shared daemon's FUSE mount: the image's modes
        continue;
      }
      struct stat st {};
      ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
      const unsigned mode = st.st_mode & 07777;
      if (S_ISDIR(st.st_mode)) {
        EXPECT_EQ(mode, 0700U) << path;
      } else {
        EXPECT_EQ(mode, 0600U) << path;
      }
      ++seen;
    }
  }
  struct stat mnt_dir {};
  ASSERT_EQ(::lstat((h.root() + "/mnt").c_str(), &mnt_dir), 0);
  EXPECT_TRUE(S_ISDIR(mnt_dir.st_mode));
  // The manager's log, a daemon log, the database, sockets, the daemon's directory at least.
  EXPECT_GE(seen, 5U);
  EXPECT_EQ(h.umount(mnt), 204);
}

TEST(ManagerLifecycle, ABadConfigurationIsRefusedNamingTheKey) {
  TempDir dir;
  std::string config = dir / "config.toml";
  std::ofstream(config) << "version = 1\nroot = \"" << dir.path()
                        << "/root\"\naddress = \"" << dir.path() << "/grpc.sock\"\n[daemon]\nrecover_policy = \"sometimes\"\n"
                        << "[system]\naddress = \"" << dir.path() << "/system.sock\"\n";
  Process c = Process::start({binary_path("ferry-snapshotter"), "--config", config}, dir / "log");
  int st = c.wait_exit(20s).value_or(-1);
  ASSERT_NE(st, -1) << "ferry-snapshotter must refuse to start, not run";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
  EXPECT_NE(read_file(dir / "log").find("recover_policy"), std::string::npos) << read_file(dir / "log");

  std::ofstream(config, std::ios::trunc)
      << "version = 1\nroot = \"" << dir.path() << "/root\"\naddress = \"" << dir.path() << "/grpc.sock\"\nbogus_key = 3\n"
      << "[system]\naddress = \"" << dir.path() << "/system.sock\"\n";
  Process c2 = Process::start({binary_path("ferry-snapshotter"), "--config", config}, dir / "log2");
  st = c2.wait_exit(20s).value_or(-1);
  ASSERT_NE(st, -1);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
  EXPECT_NE(read_file(dir / "log2").find("bogus_key"), std::string::npos) << read_file(dir / "log2");
}

// recover_policy = restart: a fresh daemon replaces the dead one and the image is attached
// again. New opens read correct data. A descriptor opened before the crash belonged to the dead
// FUSE connection: reading it must fail with an error or (if the kernel still has the pages)
// return correct bytes; it must never hang or return wrong bytes.
TEST(ManagerLifecycle, RestartPolicyStartsAFreshDaemon) {
  ManagerHarness h(ManagerOptions().with_policy("restart"));
  auto [img, mnt, id] = h.start_with_one_mount("img", 10, 3);
  ASSERT_FALSE(id.empty());
  std::string file = img.files[2];
  std::string want = read_file(img.tree + "/" + file);
  // Shared with the reading thread below, which may outlive this test if the read hangs.
  auto old_fd = std::make_shared<UniqueFd>(open_file(mnt + "/" + file));
  ASSERT_TRUE(*old_fd);

  pid_t pid = h.daemon_pid(id);
  pid_t next = h.crash_and_wait_successor(id, pid);
  ASSERT_NE(next, 0);

  {
    Readers fresh(mnt, img.tree, img.files, {.threads = 2, .direct = true, .seed = 3});
    ManagerHarness::CleanupGuard guard(h);
    EXPECT_TRUE(fresh.wait_progress(100, 20s));
    fresh.stop();
    expect_clean(fresh, "readers opening after the restart");
    // Still inside the guard's scope: cleanup may not run before the reads above are judged.
    auto old = run_with_deadline([old_fd, n = want.size()] { return pread_all(old_fd->get(), n); }, 10s);
    ASSERT_TRUE(old.has_value()) << "a read on a descriptor of the dead connection must not hang";
    std::cout << "descriptor opened before the crash: "
              << (old->rfind("error: ", 0) == 0 ? *old : "read " + std::to_string(old->size()) + " bytes")
              << "\n";
    if (old->rfind("error: ", 0) == 0) {
      EXPECT_TRUE(is_disconnect_error(*old)) << *old;
    } else {
      EXPECT_EQ(*old, want) << "an old descriptor must never return wrong bytes";
    }
    old_fd.reset();

    auto restarts = h.records_of("restart", id);
    ASSERT_EQ(restarts.size(), 1U) << h.records(id).dump(1);
    EXPECT_EQ(restarts[0].value("old_pid", int64_t{0}), pid);
    EXPECT_EQ(restarts[0].value("new_pid", int64_t{0}), next);
    EXPECT_TRUE(restarts[0].value("ok", false));
    EXPECT_EQ(h.records_of("death", id).size(), 1U);
    EXPECT_TRUE(h.records_of("failover", id).empty());
    EXPECT_EQ(h.daemon(id).value("restarts", -1), 1);
    EXPECT_EQ(h.event_counter("restart"), 1);
    EXPECT_EQ(h.umount(mnt), 204);
    EXPECT_FALSE(is_mounted(mnt)) << "the dead connection's mount must be gone too";
  }
}

// recover_policy = none: the death is recorded, the daemon is reported DEAD, and readers get
// an error promptly instead of hanging.
TEST(ManagerLifecycle, NonePolicyRecordsTheDeathAndReadsFailFast) {
  ManagerHarness h(ManagerOptions().with_policy("none").with_hot_standby(false));
  auto [img, mnt, id] = h.start_with_one_mount("img", 6, 4);
  ASSERT_FALSE(id.empty());
  ManagerHarness::CleanupGuard guard(h);
  pid_t pid = h.daemon_pid(id);
  ASSERT_TRUE(kill_and_wait_gone(pid));
  EXPECT_TRUE(h.wait_daemon_state(id, "DEAD", 10s)) << h.daemon(id).dump();
  EXPECT_TRUE(wait_until([&] { return h.records_of("death", id).size() == 1; }, 10s))
      << h.records(id).dump(1);
  auto deaths = h.records_of("death", id);
  if (!deaths.empty()) {
    EXPECT_EQ(deaths[0].value("old_pid", int64_t{0}), pid) << deaths[0].dump();
  }
  EXPECT_TRUE(h.records_of("restart", id).empty());
  EXPECT_TRUE(h.records_of("failover", id).empty());

  auto got = read_with_deadline(mnt + "/" + img.files[1], 10s);
  ASSERT_TRUE(got.has_value()) << "a read on the dead mount hangs";
  EXPECT_TRUE(is_disconnect_error(*got)) << "expected ENOTCONN/ECONNABORTED/EIO, got: " << got->substr(0, 80);
  // Still dead a little later: nobody restarted it behind our back.
  EXPECT_FALSE(h.wait_daemon_state(id, "RUNNING", 500ms));
  EXPECT_EQ(h.metric("ferry_daemons{state=\"DEAD\"}"), 1) << h.metrics();
  EXPECT_EQ(h.umount(mnt), 204) << "a dead daemon's mount can still be removed";
  EXPECT_FALSE(is_mounted(mnt));
}

// SIGTERM stops the manager only: its daemons keep serving, and a new manager reattaches.
TEST(ManagerLifecycle, SigtermLeavesDaemonsServingAndANewManagerReattaches) {
  ManagerHarness h;
  auto [img, mnt, id] = h.start_with_one_mount("img", 10, 5);
  ASSERT_FALSE(id.empty());
  pid_t pid = h.daemon_pid(id);
  Readers readers(mnt, img.tree, img.files, {.threads = 2, .direct = true, .seed = 5});
  ManagerHarness::CleanupGuard guard(h);
  ASSERT_TRUE(readers.wait_progress(20));

  int st = h.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "exit status " << st;
  readers.reset_gap();
  EXPECT_TRUE(readers.wait_progress(200, 20s)) << "reads must go on without the manager";
  EXPECT_TRUE(process_alive(pid));
  EXPECT_TRUE(is_mounted(mnt, "fuse"));

  ASSERT_TRUE(h.start());
  EXPECT_EQ(h.daemon_pid(id), pid) << h.daemons().dump(1);
  EXPECT_TRUE(h.wait_daemon_state(id, "RUNNING", 10s));
  EXPECT_TRUE(wait_until([&] { return h.records_of("reattach", id).size() == 1; }, 10s))
      << h.records(id).dump(1);
  EXPECT_TRUE(readers.wait_progress(50, 20s));
  // The reattached daemon is the new manager's to manage: a crash fails over.
  ASSERT_TRUE(kill_and_wait_gone(pid));
  EXPECT_NE(h.wait_for_pid_change(id, pid, 20s), 0) << h.records(id).dump(1);
  EXPECT_TRUE(readers.wait_progress(50, 20s));
  readers.stop();
  expect_clean(readers, "readers across the manager's SIGTERM and restart");
  EXPECT_EQ(h.umount(mnt), 204);
}

}  // namespace
}  // namespace ferry::test
