// DaemonManager's policies without root, ferryd or mounts: a FakeEnv (fake_env.h) stands in for
// processes, daemon APIs and time, while the supervisor sockets, the SQLite records and the
// files under the manager's root are real. Covers the recover policies (none / restart /
// failover, hot standby or cold successor), retry with backoff, giving up, the upgrade order,
// its rollback, and mount failures carrying ferryd's reason.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "http/error_status.h"
#include "manager/daemon_manager.h"
#include "manager/unit/fake_env.h"
#include "support/test_support.h"

namespace ferry::manager {
namespace {

using namespace std::chrono_literals;
using fake::FakeEnv;
using fake::Plan;

// Polls `cond` until it holds or 10 s pass.
template <typename F>
bool eventually(F cond) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return cond();
}

class DaemonManagerTest : public ::testing::Test {
 protected:
  void make(RecoverPolicy policy, bool hot_standby, unsigned attempts = 3) {
    config_.root = dir_ / "root";
    config_.daemon.recover_policy = policy;
    config_.daemon.hot_standby = hot_standby;
    config_.daemon.recover_attempts = attempts;
    binary_ = make_executable("ferryd");
    auto store = ManagerStore::open(config_.db_path());
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    auto m = DaemonManager::create(config_, binary_, *store_, metrics_, env_);
    ASSERT_TRUE(m) << m.error().message;
    manager_ = std::move(*m);
  }
  void TearDown() override {
    if (manager_) manager_->shutdown();
  }
  // An executable file (never run: the FakeEnv only reads its path).
  std::string make_executable(const std::string& name) {
    const std::string path = dir_ / name;
    std::ofstream(path) << "#!/bin/sh\nexit 1\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }
  MountRequest request(const std::string& name) {
    const std::string mnt = dir_ / ("mnt-" + name);
    ::mkdir(mnt.c_str(), 0700);
    const std::string image = dir_ / (name + ".erofs");
    std::ofstream(image) << "bootstrap";
    return MountRequest{mnt, image, "{}"};
  }
  // Mounts one image; its daemon id.
  std::string mount_one(const std::string& name = "a") {
    auto answer = manager_->mount(request(name));
    EXPECT_TRUE(answer) << answer.error().message;
    return answer ? answer->daemon_id : "";
  }
  DaemonView view(const std::string& id) {
    for (auto& v : manager_->daemons()) {
      if (v.record.id == id) return v;
    }
    return {};
  }
  std::vector<EventRecord> events(EventKind kind, const std::string& id = {}) {
    std::vector<EventRecord> out;
    auto all = manager_->records(1000, id);
    EXPECT_TRUE(all) << all.error().message;
    if (!all) return out;
    for (auto& e : *all) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }
  bool logged(const std::string& line) {
    auto log = env_.log();
    return std::find(log.begin(), log.end(), line) != log.end();
  }
  // Where `line` is in the FakeEnv's log (first occurrence; log size when absent).
  size_t position(const std::string& line) {
    auto log = env_.log();
    return static_cast<size_t>(std::find(log.begin(), log.end(), line) - log.begin());
  }
  // The last occurrence (log size when absent).
  size_t last_position(const std::string& line) {
    auto log = env_.log();
    auto it = std::find(log.rbegin(), log.rend(), line);
    return it == log.rend() ? log.size() : static_cast<size_t>(log.rend() - it - 1);
  }

  test::TempDir dir_;
  FakeEnv env_;
  ManagerConfig config_;
  std::string binary_;
  std::unique_ptr<ManagerStore> store_;
  ManagerMetrics metrics_;
  std::unique_ptr<DaemonManager> manager_;
};

TEST_F(DaemonManagerTest, FailoverHandsTheLiveMountToTheHotStandby) {
  make(RecoverPolicy::kFailover, /*hot_standby=*/true);
  const std::string id = mount_one();
  ASSERT_TRUE(eventually([&] { return view(id).standby_pid != 0; }));
  const pid_t serving = static_cast<pid_t>(view(id).record.pid);
  const pid_t standby = static_cast<pid_t>(view(id).standby_pid);
  EXPECT_EQ(env_.state(standby), "READY");
  EXPECT_TRUE(logged("arm " + std::to_string(standby)));

  env_.kill(serving);
  ASSERT_TRUE(eventually([&] { return view(id).record.pid == standby && view(id).state == "RUNNING"; }))
      << view(id).state;
  auto failovers = events(EventKind::kFailover, id);
  ASSERT_EQ(failovers.size(), 1U);
  EXPECT_EQ(failovers[0].old_pid, serving);
  EXPECT_EQ(failovers[0].new_pid, standby);
  EXPECT_NE(failovers[0].detail.find("hot standby"), std::string::npos) << failovers[0].detail;
  EXPECT_EQ(events(EventKind::kDeath, id).size(), 1U);
  EXPECT_TRUE(env_.backoffs().empty());
  // A new standby for the next crash.
  EXPECT_TRUE(eventually([&] { return view(id).standby_pid != 0 && view(id).standby_pid != standby; }));
}

TEST_F(DaemonManagerTest, FailoverWithoutStandbyStartsAColdSuccessorWithTheHeldState) {
  make(RecoverPolicy::kFailover, /*hot_standby=*/false);
  const std::string id = mount_one();
  const pid_t serving = static_cast<pid_t>(view(id).record.pid);
  EXPECT_TRUE(logged("sendfd " + std::to_string(serving)));  // the held state, fetched at mount

  env_.kill(serving);
  ASSERT_TRUE(eventually([&] { return !events(EventKind::kFailover, id).empty(); }));
  const pid_t successor = env_.spawned().back();
  EXPECT_TRUE(eventually([&] { return view(id).record.pid == successor; }));
  EXPECT_EQ(env_.state(successor), "RUNNING");
  // Spawned with --upgrade, given the held state, started; then asked for a fresh state.
  const auto spawn_at = position("spawn " + std::to_string(successor) + " " + binary_ + " upgrade");
  const auto takeover_at = position("takeover " + std::to_string(successor));
  const auto start_at = position("start " + std::to_string(successor));
  const auto save_at = position("sendfd " + std::to_string(successor));
  EXPECT_LT(spawn_at, takeover_at);
  EXPECT_LT(takeover_at, start_at);
  EXPECT_LT(start_at, save_at);
  EXPECT_LT(save_at, env_.log().size());
  EXPECT_NE(events(EventKind::kFailover, id)[0].detail.find("cold successor, attempt 1"), std::string::npos);
}

TEST_F(DaemonManagerTest, FailoverRetriesWithBackoffThenSucceeds) {
  make(RecoverPolicy::kFailover, /*hot_standby=*/false, /*attempts=*/3);
  const std::string id = mount_one();
  const pid_t serving = static_cast<pid_t>(view(id).record.pid);
  env_.plan({.exit_at_start = 1, .stderr_line = "ferryd: error: first", .refuse_takeover = false});
  env_.plan({.exit_at_start = std::nullopt, .stderr_line = "", .refuse_takeover = true});
  env_.kill(serving);
  ASSERT_TRUE(eventually([&] { return !events(EventKind::kFailover, id).empty(); }))
      << ::testing::PrintToString(env_.log());
  EXPECT_EQ(env_.backoffs(), (std::vector<std::chrono::milliseconds>{20ms, 200ms}));
  auto failures = events(EventKind::kFailure, id);
  ASSERT_EQ(failures.size(), 2U);
  EXPECT_NE(failures[0].detail.find("failover attempt 1/3 failed"), std::string::npos) << failures[0].detail;
  EXPECT_NE(failures[1].detail.find("failover attempt 2/3 failed"), std::string::npos) << failures[1].detail;
  EXPECT_NE(failures[1].detail.find("rejected state"), std::string::npos) << failures[1].detail;
  EXPECT_NE(events(EventKind::kFailover, id)[0].detail.find("attempt 3"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return view(id).state == "RUNNING"; }));
  // No orphan: every failed attempt's process is gone.
  for (pid_t p : env_.spawned()) {
    if (p != view(id).record.pid) {
      EXPECT_FALSE(env_.alive(p)) << p;
    }
  }
}

TEST_F(DaemonManagerTest, FailoverThatKeepsFailingFallsBackToRestart) {
  make(RecoverPolicy::kFailover, /*hot_standby=*/false, /*attempts=*/2);
  const std::string id = mount_one();
  const pid_t serving = static_cast<pid_t>(view(id).record.pid);
  env_.plan({.exit_at_start = 1, .stderr_line = "", .refuse_takeover = false});
  env_.plan({.exit_at_start = 1, .stderr_line = "", .refuse_takeover = false});
  env_.kill(serving);
  ASSERT_TRUE(eventually([&] { return !events(EventKind::kRestart, id).empty(); }));
  auto restart = events(EventKind::kRestart, id)[0];
  EXPECT_NE(restart.detail.find("failover failed"), std::string::npos) << restart.detail;
  EXPECT_NE(restart.detail.find("falling back to restart"), std::string::npos) << restart.detail;
  // The fresh daemon is not an --upgrade one: it mounts anew.
  EXPECT_TRUE(logged("spawn " + std::to_string(env_.spawned().back()) + " " + binary_));
  EXPECT_EQ(env_.backoffs(), (std::vector<std::chrono::milliseconds>{20ms}));  // between the 2 failovers
  EXPECT_TRUE(eventually([&] { return view(id).record.restarts == 1U; }));
}

TEST_F(DaemonManagerTest, RestartPolicyStartsAFreshDaemon) {
  make(RecoverPolicy::kRestart, /*hot_standby=*/true);
  const std::string id = mount_one();
  EXPECT_EQ(view(id).standby_pid, 0) << "no standby without the failover policy";
  const pid_t serving = static_cast<pid_t>(view(id).record.pid);
  env_.kill(serving);
  ASSERT_TRUE(eventually([&] { return !events(EventKind::kRestart, id).empty(); }));
  const pid_t fresh = env_.spawned().back();
  EXPECT_TRUE(logged("spawn " + std::to_string(fresh) + " " + binary_));
  EXPECT_TRUE(eventually([&] { return view(id).record.pid == fresh; }));
  EXPECT_TRUE(events(EventKind::kFailover, id).empty());
}

TEST_F(DaemonManagerTest, NonePolicyRecordsTheDeathAndStartsNothing) {
  make(RecoverPolicy::kNone, /*hot_standby=*/true);
  const std::string id = mount_one();
  const size_t spawned = env_.spawned().size();
  env_.kill(static_cast<pid_t>(view(id).record.pid));
  ASSERT_TRUE(eventually([&] { return view(id).state == "DEAD"; }));
  EXPECT_EQ(env_.spawned().size(), spawned);
  EXPECT_EQ(events(EventKind::kDeath, id).size(), 1U);
  EXPECT_EQ(view(id).record.pid, 0);
}

TEST_F(DaemonManagerTest, RecoveryGivesUpAfterItsAttemptsAndTheDaemonIsDead) {
  make(RecoverPolicy::kRestart, /*hot_standby=*/false, /*attempts=*/3);
  const std::string id = mount_one();
  for (int i = 0; i < 3; ++i) env_.plan({.exit_at_start = 1, .stderr_line = "", .refuse_takeover = false});
  env_.kill(static_cast<pid_t>(view(id).record.pid));
  ASSERT_TRUE(eventually([&] { return view(id).state == "DEAD"; }));
  EXPECT_EQ(env_.backoffs(), (std::vector<std::chrono::milliseconds>{20ms, 200ms}));
  auto failures = events(EventKind::kFailure, id);
  ASSERT_EQ(failures.size(), 4U);  // three attempts, then the verdict
  EXPECT_NE(failures.back().detail.find("recovery gave up, daemon is DEAD"), std::string::npos);
  for (pid_t p : env_.spawned()) EXPECT_FALSE(env_.alive(p)) << p;
}

TEST_F(DaemonManagerTest, UpgradeStartsTheNewProcessBeforeTheOldOneLeaves) {
  make(RecoverPolicy::kFailover, /*hot_standby=*/true);
  const std::string a = mount_one("a");
  const std::string b = mount_one("b");
  const std::string next = make_executable("ferryd-next");
  env_.set_version(next, "2.0");
  std::map<std::string, pid_t> old_pids = {{a, static_cast<pid_t>(view(a).record.pid)},
                                           {b, static_cast<pid_t>(view(b).record.pid)}};
  auto answer = manager_->upgrade({next, "2.0", ""});
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->version, "2.0");
  ASSERT_EQ(answer->daemons.size(), 2U);
  EXPECT_TRUE(logged("version " + next));  // checked with --version first
  for (const auto& step : answer->daemons) {
    SCOPED_TRACE(step.id);
    const pid_t old_pid = old_pids[step.id];
    const auto n = std::to_string(step.new_pid);
    const auto o = std::to_string(old_pid);
    EXPECT_EQ(step.old_pid, old_pid);
    EXPECT_EQ(env_.binary_of(static_cast<pid_t>(step.new_pid)), next);
    // New process first, then a fresh state from the old one, the hand-over, the new one
    // serving, and only then the old one leaving.
    EXPECT_LT(position("spawn " + n + " " + next + " upgrade"), last_position("sendfd " + o));
    EXPECT_LT(last_position("sendfd " + o), position("takeover " + n));
    EXPECT_LT(position("version " + next), position("spawn " + n + " " + next + " upgrade"));
    EXPECT_LT(position("takeover " + n), position("start " + n));
    EXPECT_LT(position("start " + n), position("exit " + o));
    EXPECT_LT(position("exit " + o), env_.log().size());
    EXPECT_EQ(view(step.id).record.binary, next);
    EXPECT_EQ(view(step.id).record.version, "2.0");
    EXPECT_EQ(events(EventKind::kUpgrade, step.id).size(), 1U);
  }
  // One daemon after the other: b's new process starts after a's old one has left.
  const auto& first = answer->daemons[0];
  const auto& second = answer->daemons[1];
  EXPECT_LT(position("exit " + std::to_string(first.old_pid)),
            position("spawn " + std::to_string(second.new_pid) + " " + next + " upgrade"));
  EXPECT_EQ(manager_->binary(), next);
  // Upgraded daemons get standbys of the new binary.
  EXPECT_TRUE(eventually([&] {
    return view(a).standby_pid != 0 && env_.binary_of(static_cast<pid_t>(view(a).standby_pid)) == next;
  }));
}

TEST_F(DaemonManagerTest, ANewProcessThatDiesAfterTheOldOneLeftIsRolledBack) {
  make(RecoverPolicy::kFailover, /*hot_standby=*/false);
  const std::string id = mount_one();
  const pid_t old_pid = static_cast<pid_t>(view(id).record.pid);
  const std::string next = make_executable("ferryd-next");
  env_.set_version(next, "2.0");
  // The one instant a real crash reaches only by chance: the new process dies right as the
  // old one has left.
  env_.on_exit = [&](pid_t leaving) {
    if (leaving == old_pid) env_.kill(env_.spawned().back());
  };
  auto answer = manager_->upgrade({next, "", ""});
  env_.on_exit = nullptr;
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, EIO);
  EXPECT_NE(answer.error().message.find("rolled back to '" + binary_ + "'"), std::string::npos)
      << answer.error().message;
  auto rollbacks = events(EventKind::kRollback, id);
  ASSERT_EQ(rollbacks.size(), 1U);
  const pid_t restored = static_cast<pid_t>(view(id).record.pid);
  EXPECT_EQ(rollbacks[0].new_pid, restored);
  EXPECT_EQ(env_.binary_of(restored), binary_);  // the old binary, with the held state
  EXPECT_TRUE(logged("takeover " + std::to_string(restored)));
  EXPECT_EQ(view(id).record.binary, binary_);
  EXPECT_EQ(view(id).state, "RUNNING");
  EXPECT_NE(manager_->binary(), next);
  auto failures = events(EventKind::kFailure, id);
  ASSERT_FALSE(failures.empty());
  EXPECT_NE(failures[0].detail.find("rolling back to '" + binary_ + "'"), std::string::npos) << failures[0].detail;
}

TEST_F(DaemonManagerTest, AnUpgradeThatFailsBeforeTheHandOverLeavesTheOldDaemonServing) {
  make(RecoverPolicy::kFailover, /*hot_standby=*/false);
  const std::string id = mount_one();
  const pid_t old_pid = static_cast<pid_t>(view(id).record.pid);
  const std::string next = make_executable("ferryd-next");
  env_.plan({.exit_at_start = std::nullopt, .stderr_line = "", .refuse_takeover = true});
  auto answer = manager_->upgrade({next, "", ""});
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, EIO);
  EXPECT_EQ(view(id).record.pid, old_pid);
  EXPECT_TRUE(env_.alive(old_pid));
  EXPECT_FALSE(logged("exit " + std::to_string(old_pid)));
  EXPECT_FALSE(env_.alive(env_.spawned().back()));
  auto failures = events(EventKind::kFailure, id);
  ASSERT_EQ(failures.size(), 1U);
  EXPECT_NE(failures[0].detail.find("keeps serving"), std::string::npos) << failures[0].detail;
}

TEST_F(DaemonManagerTest, AMountWhoseDaemonRefusesItsImageIsABadRequestWithFerrydsReason) {
  make(RecoverPolicy::kFailover, /*hot_standby=*/true);
  const std::string reason = "image '/x.erofs': corrupt EROFS image '/x.erofs': not an EROFS image";
  env_.plan({.exit_at_start = 2, .stderr_line = "ferryd: error: " + reason, .refuse_takeover = false});
  auto req = request("bad");
  auto answer = manager_->mount(req);
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, EINVAL);
  EXPECT_NE(answer.error().message.find(reason), std::string::npos) << answer.error().message;
  EXPECT_EQ(answer.error().message.find("daemon ID"), std::string::npos);
  auto failures = events(EventKind::kFailure);
  ASSERT_EQ(failures.size(), 1U);
  EXPECT_NE(failures[0].detail.find(reason), std::string::npos) << failures[0].detail;
  EXPECT_TRUE(manager_->daemons().empty());
  // The mountpoint is free again.
  EXPECT_TRUE(manager_->mount(req));
}

TEST_F(DaemonManagerTest, AMountWhoseDaemonFailsForAnotherReasonIsAnInternalError) {
  make(RecoverPolicy::kFailover, /*hot_standby=*/false);
  env_.plan({.exit_at_start = 1, .stderr_line = "ferryd: error: out of memory", .refuse_takeover = false});
  auto answer = manager_->mount(request("a"));
  ASSERT_FALSE(answer);
  EXPECT_EQ(http::http_status_for_errno(answer.error().code), 500) << answer.error().message;
  EXPECT_NE(answer.error().message.find("see "), std::string::npos) << "names the daemon log";
  EXPECT_EQ(events(EventKind::kFailure).size(), 1U);
}

}  // namespace
}  // namespace ferry::manager
