// ferry-snapshotter failover end to end: daemons killed with SIGKILL while reader threads verify
// every byte; the manager itself killed and restarted; one shared daemon serving two images.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <set>

#include "common/unique_fd.h"
#include "manager/e2e/manager_harness.h"

namespace ferry::test {
namespace {

using nlohmann::json;

// The largest file of the image (so a descriptor kept open across crashes reads many blocks).
std::string largest_file(const SampleImage& img) {
  std::string best = img.files.front();
  uintmax_t best_size = 0;
  for (const auto& f : img.files) {
    auto size = std::filesystem::file_size(img.tree + "/" + f);
    if (size > best_size) {
      best_size = size;
      best = f;
    }
  }
  return best;
}

TEST(ManagerFailover, FiftyCrashesInARowLoseNothing) {
  constexpr int kCrashes = 50;
  ManagerHarness h(ManagerOptions().with_policy("failover"));
  SampleImage img = h.make_image("img", 16, 11);
  std::string mnt = h.make_mountpoint("a");
  ASSERT_TRUE(h.start());
  std::string id = h.mount(mnt, img);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(h.wait_daemon_state(id, "RUNNING")) << h.daemons().dump();
  EXPECT_TRUE(is_mounted(mnt, "fuse"));

  std::string kept_file = largest_file(img);
  std::string want = read_file(img.tree + "/" + kept_file);
  UniqueFd kept_fd(open_file(mnt + "/" + kept_file));
  ASSERT_TRUE(kept_fd) << std::strerror(errno);
  Readers buffered(mnt, img.tree, img.files, {.threads = 1, .direct = false, .seed = 1});
  Readers direct(mnt, img.tree, img.files, {.threads = 2, .direct = true, .seed = 2});
  ManagerHarness::CleanupGuard guard(h);

  std::vector<pid_t> pids = {h.daemon_pid(id)};
  ASSERT_GT(pids[0], 0);
  for (int i = 1; i <= kCrashes; ++i) {
    ASSERT_TRUE(direct.wait_progress(3, 20s))
        << "no reads completed before crash " << i << "; " << direct.describe("direct");
    ASSERT_TRUE(kill_and_wait_gone(pids.back())) << "daemon " << pids.back() << " survived SIGKILL";
    pid_t next = h.wait_for_pid_change(id, pids.back(), 20s);
    ASSERT_NE(next, 0) << "no RUNNING successor after crash " << i << ": " << h.daemon(id).dump();
    pids.push_back(next);
  }
  ASSERT_TRUE(direct.wait_progress(50, 20s));
  buffered.stop();
  direct.stop();
  expect_clean(buffered, "buffered readers");
  expect_clean(direct, "direct readers");

  EXPECT_EQ(pread_all(kept_fd.get(), want.size() + 1), want)
      << "a file opened before the first crash must read correctly after the last";

  // Records: one death and one failover per crash, each failover old -> new in our sequence.
  std::set<std::pair<int64_t, int64_t>> expected_pairs;
  for (size_t i = 1; i < pids.size(); ++i) expected_pairs.insert({pids[i - 1], pids[i]});
  ASSERT_TRUE(wait_until([&] { return h.records_of("failover", id).size() >= kCrashes; }, 10s))
      << h.records(id).dump(1);
  auto deaths = h.records_of("death", id);
  auto failovers = h.records_of("failover", id);
  EXPECT_EQ(deaths.size(), size_t{kCrashes});
  EXPECT_EQ(failovers.size(), size_t{kCrashes});
  EXPECT_TRUE(h.records_of("failure", id).empty()) << h.records(id).dump(1);
  std::set<int64_t> dead_pids;
  for (const auto& d : deaths) dead_pids.insert(d.value("old_pid", int64_t{0}));
  for (size_t i = 0; i + 1 < pids.size(); ++i) EXPECT_EQ(dead_pids.count(pids[i]), 1U) << "pid " << pids[i];
  double max_ms = 0;
  double sum_ms = 0;
  for (const auto& f : failovers) {
    EXPECT_TRUE(f.value("ok", false)) << f.dump();
    double ms = f.value("duration_ms", -1.0);
    EXPECT_GT(ms, 0.0) << f.dump();
    max_ms = std::max(max_ms, ms);
    sum_ms += ms;
    EXPECT_EQ(expected_pairs.count({f.value("old_pid", int64_t{0}), f.value("new_pid", int64_t{0})}), 1U)
        << "failover record does not match a crash we caused: " << f.dump();
  }
  std::cout << "failover duration: mean " << sum_ms / kCrashes << " ms, max " << max_ms << " ms\n";

  auto d = h.daemon(id);
  EXPECT_EQ(d.value("failovers", -1), kCrashes) << d.dump();
  EXPECT_TRUE(h.wait_daemon_state(id, "RUNNING", 10s)) << h.daemon(id).dump();
  EXPECT_EQ(h.event_counter("failover"), kCrashes) << h.metrics();
  EXPECT_EQ(h.event_counter("death"), kCrashes);
  EXPECT_EQ(h.metric("ferry_recovery_duration_ms_count{event=\"failover\"}"), kCrashes) << h.metrics();
  EXPECT_EQ(h.metric("ferry_daemons{state=\"RUNNING\"}"), 1) << h.metrics();

  // The mount is still the manager's to remove.
  EXPECT_EQ(h.umount(mnt), 204);
  EXPECT_FALSE(is_mounted(mnt));
}

// Manager SIGKILLed while its daemons serve: reads go on without it; a new manager finds the
// daemons (reattach) and can fail them over again.
TEST(ManagerFailover, ManagerKilledAndRestartedThenACrashStillFailsOver) {
  ManagerHarness h(ManagerOptions().with_policy("failover"));
  SampleImage a = h.make_image("a", 12, 21);
  SampleImage b = h.make_image("b", 12, 22);
  std::string mnt_a = h.make_mountpoint("a");
  std::string mnt_b = h.make_mountpoint("b");
  ASSERT_TRUE(h.start());
  std::string id_a = h.mount(mnt_a, a);
  std::string id_b = h.mount(mnt_b, b);
  ASSERT_FALSE(id_a.empty());
  ASSERT_FALSE(id_b.empty());
  EXPECT_NE(id_a, id_b) << "dedicated mode: one daemon per mount";
  ASSERT_TRUE(h.wait_daemon_state(id_a, "RUNNING"));
  ASSERT_TRUE(h.wait_daemon_state(id_b, "RUNNING"));
  pid_t pid_a = h.daemon_pid(id_a);
  pid_t pid_b = h.daemon_pid(id_b);

  Readers ra(mnt_a, a.tree, a.files, {.threads = 2, .direct = true, .seed = 5});
  Readers rb(mnt_b, b.tree, b.files, {.threads = 1, .direct = true, .seed = 6});
  ManagerHarness::CleanupGuard guard(h);
  ASSERT_TRUE(ra.wait_progress(10));

  h.kill_manager();
  ra.reset_gap();
  EXPECT_TRUE(ra.wait_progress(100, 20s)) << "reads stopped while the manager was down";
  EXPECT_TRUE(rb.wait_progress(50, 20s)) << "reads stopped while the manager was down";
  std::cout << "max gap while the manager was down: " << ra.max_gap().count() << " us\n";
  EXPECT_TRUE(process_alive(pid_a));
  EXPECT_TRUE(process_alive(pid_b));

  ASSERT_TRUE(h.start());
  EXPECT_EQ(h.daemon_pid(id_a), pid_a) << h.daemons().dump(1);
  EXPECT_EQ(h.daemon_pid(id_b), pid_b);
  EXPECT_TRUE(h.wait_daemon_state(id_a, "RUNNING", 10s)) << h.daemon(id_a).dump();
  ASSERT_TRUE(wait_until([&] { return !h.records_of("reattach", id_a).empty(); }, 10s))
      << "no reattach record: " << h.records(id_a).dump(1);
  EXPECT_TRUE(wait_until([&] { return !h.records_of("reattach", id_b).empty(); }, 10s));
  auto mounts = h.request("GET", "/api/v1/mounts");
  EXPECT_EQ(mounts.status, 200);
  EXPECT_EQ(mounts.json.size(), 2U) << mounts.body;

  // The restarted manager must be able to fail the daemon over (it fetched a fresh state).
  ra.reset_gap();
  pid_t next = h.crash_and_wait_successor(id_a, pid_a);
  ASSERT_NE(next, 0);
  EXPECT_TRUE(ra.wait_progress(100, 20s));
  EXPECT_TRUE(rb.wait_progress(20, 20s));
  ra.stop();
  rb.stop();
  expect_clean(ra, "readers of the crashed daemon");
  expect_clean(rb, "readers of the other daemon");
  auto failovers = h.records_of("failover", id_a);
  ASSERT_EQ(failovers.size(), 1U) << h.records(id_a).dump(1);
  EXPECT_EQ(failovers[0].value("old_pid", int64_t{0}), pid_a);
  EXPECT_EQ(failovers[0].value("new_pid", int64_t{0}), next);
  EXPECT_EQ(h.daemon_pid(id_b), pid_b) << "the other daemon must be untouched";
}

// Without a hot standby, a daemon that dies while no manager watches it cannot be failed over
// (nobody held its /dev/fuse fd): the restarted manager starts a fresh one for its mount.
TEST(ManagerFailover, DaemonThatDiedWhileTheManagerWasDownIsRestarted) {
  ManagerHarness h(ManagerOptions().with_policy("failover").with_hot_standby(false));
  auto [img, mnt, id] = h.start_with_one_mount("img", 8, 31);
  ASSERT_FALSE(id.empty());
  pid_t pid = h.daemon_pid(id);
  h.kill_manager();
  ASSERT_TRUE(kill_and_wait_gone(pid));
  ASSERT_TRUE(h.start());
  pid_t next = h.wait_for_pid_change(id, pid, 20s);
  ASSERT_NE(next, 0) << h.daemons().dump(1) << "\n" << h.records(id).dump(1);
  Readers fresh(mnt, img.tree, img.files, {.threads = 2, .direct = true, .seed = 7});
  ManagerHarness::CleanupGuard guard(h);
  EXPECT_TRUE(fresh.wait_progress(50, 20s));
  fresh.stop();
  expect_clean(fresh, "readers after the restart");
  EXPECT_FALSE(h.records_of("restart", id).empty()) << h.records(id).dump(1);
}

// With a hot standby, a daemon that dies while no manager runs is still failed over: the
// standby holds the state and the fd, and starts by itself. The restarted manager adopts it.
TEST(ManagerFailover, DaemonThatDiesWhileTheManagerIsDownIsTakenOverByItsStandby) {
  ManagerHarness h(ManagerOptions().with_policy("failover"));
  auto [img, mnt, id] = h.start_with_one_mount("img", 10, 33);
  ASSERT_FALSE(id.empty());
  pid_t pid = h.daemon_pid(id);
  pid_t standby = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        standby = h.daemon(id).value("standby_pid", 0);
        return standby > 0;
      },
      10s))
      << h.daemon(id).dump();
  Readers readers(mnt, img.tree, img.files, {.threads = 2, .direct = true, .seed = 34});
  ManagerHarness::CleanupGuard guard(h);
  ASSERT_TRUE(readers.wait_progress(10));

  h.kill_manager();
  ASSERT_TRUE(kill_and_wait_gone(pid));
  readers.reset_gap();
  EXPECT_TRUE(readers.wait_progress(100, 20s)) << "the standby did not take over without a manager";
  EXPECT_TRUE(process_alive(standby));

  ASSERT_TRUE(h.start());
  EXPECT_TRUE(h.wait_daemon_state(id, "RUNNING", 10s)) << h.daemon(id).dump();
  EXPECT_EQ(h.daemon_pid(id), standby) << "the manager must adopt the standby that took over";
  auto failovers = h.records_of("failover", id);
  ASSERT_EQ(failovers.size(), 1U) << h.records(id).dump(1);
  EXPECT_EQ(failovers[0].value("old_pid", int64_t{0}), pid);
  EXPECT_EQ(failovers[0].value("new_pid", int64_t{0}), standby);
  EXPECT_TRUE(h.records_of("restart", id).empty()) << h.records(id).dump(1);

  // And it fails the adopted daemon over again.
  readers.reset_gap();
  pid_t next = h.crash_and_wait_successor(id, standby);
  ASSERT_NE(next, 0);
  EXPECT_TRUE(readers.wait_progress(100, 20s));
  readers.stop();
  expect_clean(readers, "readers through two crashes, one without a manager");
  EXPECT_EQ(h.records_of("failover", id).size(), 2U) << h.records(id).dump(1);
}

// Shared mode: one daemon serves both images; a crash fails both over; removing one mount
// leaves the other serving.
TEST(ManagerFailover, SharedDaemonServesTwoImagesThroughACrashAndAnUmount) {
  ManagerHarness h(ManagerOptions().with_mode("shared").with_policy("failover"));
  SampleImage a = h.make_image("a", 12, 41);
  SampleImage b = h.make_image("b", 12, 42);
  std::string mnt_a = h.make_mountpoint("a");
  std::string mnt_b = h.make_mountpoint("b");
  ASSERT_TRUE(h.start());
  std::string id_a = h.mount(mnt_a, a);
  std::string id_b = h.mount(mnt_b, b);
  ASSERT_FALSE(id_a.empty());
  EXPECT_EQ(id_a, id_b) << "shared mode: both images in one daemon";
  ASSERT_TRUE(h.wait_daemon_state(id_a, "RUNNING"));
  EXPECT_EQ(h.daemons().size(), 1U) << h.daemons().dump(1);
  auto d = h.daemon(id_a);
  EXPECT_EQ(d["instances"].size(), 2U) << d.dump();
  EXPECT_EQ(read_file(mnt_a + "/" + a.files[0]), read_file(a.tree + "/" + a.files[0]));
  EXPECT_EQ(read_file(mnt_b + "/" + b.files[0]), read_file(b.tree + "/" + b.files[0]));

  Readers ra(mnt_a, a.tree, a.files, {.threads = 2, .direct = true, .seed = 8});
  Readers rb(mnt_b, b.tree, b.files, {.threads = 2, .direct = true, .seed = 9});
  ManagerHarness::CleanupGuard guard(h);
  ASSERT_TRUE(ra.wait_progress(10));
  ASSERT_TRUE(rb.wait_progress(10));

  pid_t pid = h.daemon_pid(id_a);
  for (int i = 0; i < 3; ++i) {
    pid_t next = h.crash_and_wait_successor(id_a, pid);
    ASSERT_NE(next, 0);
    pid = next;
    EXPECT_TRUE(ra.wait_progress(20, 20s));
    EXPECT_TRUE(rb.wait_progress(20, 20s));
  }

  ra.stop();
  EXPECT_EQ(h.umount(mnt_a), 204);
  EXPECT_FALSE(is_mounted(mnt_a)) << "the bind mount must be gone";
  rb.reset_gap();
  EXPECT_TRUE(rb.wait_progress(100, 20s)) << "the other image must keep serving";
  EXPECT_EQ(h.daemon_pid(id_a), pid) << "the shared daemon stays";
  d = h.daemon(id_a);
  EXPECT_EQ(d["instances"].size(), 1U) << d.dump();
  rb.stop();
  expect_clean(ra, "readers of image a");
  expect_clean(rb, "readers of image b");
  EXPECT_EQ(h.records_of("failover", id_a).size(), 3U) << h.records(id_a).dump(1);
  EXPECT_EQ(h.umount(mnt_b), 204);
}

}  // namespace
}  // namespace ferry::test
