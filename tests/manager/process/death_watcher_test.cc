// DeathWatcher against real processes: one prompt callback per death with the right key and
// pid, unwatch/replace semantics (including from inside the callback), many at once, shutdown.
#include "manager/death_watcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "manager/process/process_test_util.h"

namespace ferry::test {
namespace {

using manager::DeathWatcher;
using Clock = std::chrono::steady_clock;

// Records every callback; thread-safe.
struct Deaths {
  struct Death {
    std::string key;
    int pid;
    Clock::time_point at;
  };
  mutable std::mutex mu;
  std::vector<Death> seen;

  DeathWatcher::Callback callback() {
    return [this](const std::string& key, int pid) {
      std::lock_guard lock(mu);
      seen.push_back({key, pid, Clock::now()});
    };
  }
  size_t count() const {
    std::lock_guard lock(mu);
    return seen.size();
  }
  std::vector<Death> all() const {
    std::lock_guard lock(mu);
    return seen;
  }
};

std::unique_ptr<DeathWatcher> make_watcher(DeathWatcher::Callback cb) {
  auto w = DeathWatcher::create(std::move(cb));
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().message);
  return w.ok() ? std::move(w).value() : nullptr;
}

class DeathWatcherTest : public ::testing::Test {
 protected:
  Spawned sleeper() { return spawn_or_fail({"/bin/sleep", "30"}, dir_ / "log"); }
  TempDir dir_;
  Deaths deaths_;
};

TEST_F(DeathWatcherTest, FiresOncePromptlyWithKeyAndPid) {
  auto w = make_watcher(deaths_.callback());
  ASSERT_TRUE(w);
  Spawned p = sleeper();
  ASSERT_TRUE(p->valid());
  ASSERT_TRUE(w->watch("d1", p->pidfd(), p->pid()).ok());
  auto killed_at = Clock::now();
  ASSERT_TRUE(p->signal(SIGKILL).ok());
  ASSERT_TRUE(wait_until([&] { return deaths_.count() >= 1; }, 5s)) << "death not noticed";
  auto d = deaths_.all().at(0);
  EXPECT_EQ(d.key, "d1");
  EXPECT_EQ(d.pid, p->pid());
  auto latency = std::chrono::duration_cast<std::chrono::microseconds>(d.at - killed_at);
  RecordProperty("death_notice_latency_us", std::to_string(latency.count()));
  // Typically well under 50 ms; the bound leaves room for a loaded test machine.
  EXPECT_LT(latency, 500ms) << "death noticed after " << latency.count() << " us";
  EXPECT_FALSE(wait_until([&] { return deaths_.count() > 1; }, 200ms)) << "fired more than once";
  // The process is still ours to reap; the watcher never waits on it.
  auto how = p->wait_exit(5s);
  ASSERT_TRUE(how.ok()) << how.error().message;
  EXPECT_EQ(*how, "killed by signal 9");
}

TEST_F(DeathWatcherTest, AlreadyDeadProcessFiresAtOnce) {
  auto w = make_watcher(deaths_.callback());
  ASSERT_TRUE(w);
  Spawned p = spawn_or_fail({"/bin/true"}, dir_ / "log");
  ASSERT_TRUE(p->wait_exit(5s).ok());
  ASSERT_TRUE(w->watch("gone", p->pidfd(), p->pid()).ok());
  ASSERT_TRUE(wait_until([&] { return deaths_.count() >= 1; }, 5s));
  EXPECT_EQ(deaths_.all().at(0).key, "gone");
}

TEST_F(DeathWatcherTest, UnwatchPreventsTheCallback) {
  auto w = make_watcher(deaths_.callback());
  ASSERT_TRUE(w);
  Spawned p = sleeper();
  Spawned q = sleeper();
  ASSERT_TRUE(p->valid() && q->valid());
  ASSERT_TRUE(w->watch("p", p->pidfd(), p->pid()).ok());
  ASSERT_TRUE(w->watch("q", q->pidfd(), q->pid()).ok());
  w->unwatch("p");
  w->unwatch("never-watched");  // harmless
  ASSERT_TRUE(p->signal(SIGKILL).ok());
  ASSERT_TRUE(p->wait_exit(5s).ok());
  // q's death is the witness that the watcher is alive and would have reported p by now.
  ASSERT_TRUE(q->signal(SIGKILL).ok());
  ASSERT_TRUE(wait_until([&] { return deaths_.count() >= 1; }, 5s));
  EXPECT_FALSE(wait_until([&] { return deaths_.count() > 1; }, 200ms));
  auto all = deaths_.all();
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].key, "q");
}

TEST_F(DeathWatcherTest, WatchReplacesAnEarlierWatchOfTheSameKey) {
  auto w = make_watcher(deaths_.callback());
  ASSERT_TRUE(w);
  Spawned old_p = sleeper();
  Spawned new_p = sleeper();
  ASSERT_TRUE(w->watch("d", old_p->pidfd(), old_p->pid()).ok());
  ASSERT_TRUE(w->watch("d", new_p->pidfd(), new_p->pid()).ok());
  ASSERT_TRUE(old_p->kill_and_reap().ok());
  ASSERT_TRUE(new_p->signal(SIGKILL).ok());
  ASSERT_TRUE(wait_until([&] { return deaths_.count() >= 1; }, 5s));
  EXPECT_FALSE(wait_until([&] { return deaths_.count() > 1; }, 200ms));
  auto all = deaths_.all();
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].key, "d");
  EXPECT_EQ(all[0].pid, new_p->pid());
}

TEST_F(DeathWatcherTest, ThePidfdMayBeClosedByItsOwnerAfterWatch) {
  // The watcher keeps its own reference: a caller closing its fd early does not blind it.
  auto w = make_watcher(deaths_.callback());
  ASSERT_TRUE(w);
  Spawned p = sleeper();
  {
    UniqueFd dup(::dup(p->pidfd()));
    ASSERT_TRUE(dup);
    ASSERT_TRUE(w->watch("d", dup.get(), p->pid()).ok());
  }
  ASSERT_TRUE(p->signal(SIGKILL).ok());
  ASSERT_TRUE(wait_until([&] { return deaths_.count() >= 1; }, 5s));
}

TEST_F(DeathWatcherTest, BadPidfdIsAnError) {
  auto w = make_watcher(deaths_.callback());
  ASSERT_TRUE(w);
  Status st = w->watch("bad", -1, 1234);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EBADF);
  EXPECT_NE(st.error().message.find("bad"), std::string::npos) << st.error().message;
}

TEST_F(DeathWatcherTest, UnwatchWaitsForARunningCallback) {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool release = false;
  std::atomic<bool> finished{false};
  auto w = make_watcher([&](const std::string&, int) {
    std::unique_lock lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait_for(lock, 10s, [&] { return release; });
    finished = true;
  });
  ASSERT_TRUE(w);
  Spawned p = sleeper();
  ASSERT_TRUE(w->watch("d", p->pidfd(), p->pid()).ok());
  ASSERT_TRUE(p->signal(SIGKILL).ok());
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return entered; }));
  }
  std::atomic<bool> unwatched{false};
  bool finished_when_unwatch_returned = false;
  std::thread t([&] {
    w->unwatch("d");
    finished_when_unwatch_returned = finished.load();
    unwatched = true;
  });
  EXPECT_FALSE(wait_until([&] { return unwatched.load(); }, 200ms))
      << "unwatch returned while its callback ran";
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  t.join();
  EXPECT_TRUE(finished_when_unwatch_returned);
  // unwatch of another key does not wait for an unrelated callback.
}

TEST_F(DeathWatcherTest, CallbackMayUnwatchAndRewatchItsOwnKey) {
  Spawned first = sleeper();
  Spawned second = sleeper();
  ASSERT_TRUE(first->valid() && second->valid());
  std::unique_ptr<DeathWatcher> w;
  std::atomic<int> calls{0};
  std::atomic<int> last_pid{0};
  Status rewatch;
  w = make_watcher([&](const std::string& key, int pid) {
    last_pid = pid;
    if (calls.fetch_add(1) == 0) {
      w->unwatch(key);  // must not wait for itself
      rewatch = w->watch(key, second->pidfd(), second->pid());
    }
  });
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->watch("d", first->pidfd(), first->pid()).ok());
  ASSERT_TRUE(first->signal(SIGKILL).ok());
  ASSERT_TRUE(wait_until([&] { return calls.load() == 1; }, 5s)) << "callback deadlocked or did not run";
  ASSERT_TRUE(rewatch.ok()) << rewatch.error().message;
  ASSERT_TRUE(second->signal(SIGKILL).ok());
  ASSERT_TRUE(wait_until([&] { return calls.load() == 2; }, 5s));
  EXPECT_EQ(last_pid.load(), second->pid());
  w.reset();
}

TEST_F(DeathWatcherTest, FiftyProcessesAtOnceEachReportedOnceWithItsPid) {
  auto w = make_watcher(deaths_.callback());
  ASSERT_TRUE(w);
  std::vector<Spawned> procs;
  std::map<std::string, int> want;
  for (int i = 0; i < 50; ++i) {
    procs.push_back(sleeper());
    ASSERT_TRUE(procs.back()->valid());
    std::string key = "d" + std::to_string(i);
    want[key] = procs.back()->pid();
    ASSERT_TRUE(w->watch(key, procs.back()->pidfd(), procs.back()->pid()).ok());
  }
  auto killed_at = Clock::now();
  for (auto& p : procs) ASSERT_TRUE(p->signal(SIGKILL).ok());
  ASSERT_TRUE(wait_until([&] { return deaths_.count() >= 50; }, 10s)) << deaths_.count() << " of 50 noticed";
  EXPECT_FALSE(wait_until([&] { return deaths_.count() > 50; }, 200ms));
  std::map<std::string, int> got;
  Clock::time_point last = killed_at;
  for (const auto& d : deaths_.all()) {
    EXPECT_EQ(got.count(d.key), 0U) << d.key << " reported twice";
    got[d.key] = d.pid;
    last = std::max(last, d.at);
  }
  EXPECT_EQ(got, want);
  EXPECT_LT(last - killed_at, 2s);
}

TEST_F(DeathWatcherTest, DestructorStopsWithWatchesInPlaceAndNoLaterCallback) {
  auto w = make_watcher(deaths_.callback());
  ASSERT_TRUE(w);
  Spawned p = sleeper();
  ASSERT_TRUE(w->watch("d", p->pidfd(), p->pid()).ok());
  w.reset();
  ASSERT_TRUE(p->kill_and_reap().ok());
  EXPECT_EQ(deaths_.count(), 0U);
}

}  // namespace
}  // namespace ferry::test
