#include "manager/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <limits>
#include <random>
#include <thread>

#include "support/test_support.h"

namespace ferry::manager {
namespace {

using ::testing::HasSubstr;

DaemonRecord sample(const std::string& id, int mounts = 2) {
  DaemonRecord r;
  r.id = id;
  r.pid = 4242;
  r.start_time = std::numeric_limits<uint64_t>::max() - 7;  // above INT64_MAX: must survive the int64 column
  r.api_socket = "/var/lib/ferry/daemons/" + id + "/api.sock";
  r.supervisor_path = "/var/lib/ferry/supervisor/" + id + ".sock";
  r.mountpoint = "/mnt/" + id;
  r.shared = true;
  r.binary = "/usr/bin/ferryd";
  r.version = "0.1.0";
  r.policy = RecoverPolicy::kRestart;
  r.failover_policy = "none";
  r.threads = 13;
  r.failovers = 3;
  r.restarts = std::numeric_limits<uint64_t>::max();
  r.upgrades = 5;
  for (int i = mounts - 1; i >= 0; --i) {  // inserted in reverse: daemons() sorts them
    MountRecord m;
    m.mountpoint = "/mnt/" + id + "/m" + std::to_string(i);
    m.bootstrap = "/images/" + id + "-" + std::to_string(i) + ".erofs";
    m.config_json = R"({"device":{"backend":{"type":"localfs","config":{"dir":"/blobs 'quoted' \"x\""}}}})";
    m.daemon_path = "/img" + std::to_string(i);
    r.mounts.push_back(m);
  }
  return r;
}

void expect_same(const DaemonRecord& a, const DaemonRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.start_time, b.start_time);
  EXPECT_EQ(a.api_socket, b.api_socket);
  EXPECT_EQ(a.supervisor_path, b.supervisor_path);
  EXPECT_EQ(a.mountpoint, b.mountpoint);
  EXPECT_EQ(a.shared, b.shared);
  EXPECT_EQ(a.binary, b.binary);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.policy, b.policy);
  EXPECT_EQ(a.failover_policy, b.failover_policy);
  EXPECT_EQ(a.threads, b.threads);
  EXPECT_EQ(a.failovers, b.failovers);
  EXPECT_EQ(a.restarts, b.restarts);
  EXPECT_EQ(a.upgrades, b.upgrades);
  ASSERT_EQ(a.mounts.size(), b.mounts.size());
  // Mounts come back ordered by mountpoint.
  std::vector<MountRecord> want = b.mounts;
  std::sort(want.begin(), want.end(),
            [](const auto& x, const auto& y) { return x.mountpoint < y.mountpoint; });
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(a.mounts[i].mountpoint, want[i].mountpoint);
    EXPECT_EQ(a.mounts[i].bootstrap, want[i].bootstrap);
    EXPECT_EQ(a.mounts[i].config_json, want[i].config_json);
    EXPECT_EQ(a.mounts[i].daemon_path, want[i].daemon_path);
  }
}

std::unique_ptr<ManagerStore> open_ok(const std::string& path) {
  auto s = ManagerStore::open(path);
  EXPECT_TRUE(s.ok()) << s.error().message;
  return s.ok() ? std::move(s).value() : nullptr;
}

EventRecord event(const std::string& daemon, EventKind kind, int64_t n) {
  EventRecord e;
  e.time_ms = 1700000000000 + n;
  e.daemon_id = daemon;
  e.kind = kind;
  e.old_pid = 100 + n;
  e.new_pid = 200 + n;
  e.duration_ms = 1.5 * static_cast<double>(n);
  e.ok = n % 2 == 0;
  e.detail = "event " + std::to_string(n);
  return e;
}

TEST(ManagerStore, CreatesPrivateFileAndDirectory) {
  test::TempDir dir;
  const std::string path = dir / "a/b/ferry.db";
  auto store = open_ok(path);
  ASSERT_TRUE(store);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((dir / "a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_TRUE(store->set_setting("k", "v").ok());  // forces the WAL file into existence
  if (::stat((path + "-wal").c_str(), &st) == 0) {
    EXPECT_EQ(st.st_mode & 07777, 0600u);
  }
}

TEST(ManagerStore, DaemonRoundTripEveryField) {
  test::TempDir dir;
  auto store = open_ok(dir / "ferry.db");
  ASSERT_TRUE(store);
  DaemonRecord a = sample("bbb", 3);
  DaemonRecord b = sample("aaa", 0);
  b.shared = false;
  b.policy = RecoverPolicy::kNone;
  b.supervisor_path = "";
  b.start_time = 0;
  DaemonRecord c = sample("ccc", 1);
  c.policy = RecoverPolicy::kFailover;
  c.failover_policy = "resend";
  c.pid = std::numeric_limits<int64_t>::max();
  ASSERT_TRUE(store->put_daemon(a).ok());
  ASSERT_TRUE(store->put_daemon(b).ok());
  ASSERT_TRUE(store->put_daemon(c).ok());
  auto all = store->daemons();
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 3u);
  expect_same((*all)[0], b);  // ordered by id
  expect_same((*all)[1], a);
  expect_same((*all)[2], c);
}

TEST(ManagerStore, PutReplacesDaemonAndMounts) {
  test::TempDir dir;
  auto store = open_ok(dir / "ferry.db");
  ASSERT_TRUE(store);
  DaemonRecord r = sample("d1", 3);
  ASSERT_TRUE(store->put_daemon(r).ok());
  r.pid = 77;
  r.failovers = 4;
  r.mounts.erase(r.mounts.begin());  // one mount fewer
  r.mounts[0].bootstrap = "/images/new.erofs";
  ASSERT_TRUE(store->put_daemon(r).ok());
  auto all = store->daemons();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  expect_same((*all)[0], r);

  // A mountpoint can belong to one daemon only; the refused write changes nothing.
  DaemonRecord other = sample("d2", 0);
  other.mounts.push_back(r.mounts[0]);
  Status st = store->put_daemon(other);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EEXIST);
  EXPECT_THAT(st.error().message, HasSubstr(r.mounts[0].mountpoint));
  all = store->daemons();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  expect_same((*all)[0], r);

  // Moving a mount from one daemon to another in the same put works once the first lets go.
  DaemonRecord first = r;
  first.mounts.clear();
  ASSERT_TRUE(store->put_daemon(first).ok());
  ASSERT_TRUE(store->put_daemon(other).ok());
  all = store->daemons();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_TRUE((*all)[0].mounts.empty());
  ASSERT_EQ((*all)[1].mounts.size(), 1u);

  EXPECT_FALSE(store->put_daemon(DaemonRecord{}).ok());  // no id
}

TEST(ManagerStore, RemoveDaemon) {
  test::TempDir dir;
  auto store = open_ok(dir / "ferry.db");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_daemon(sample("x", 2)).ok());
  ASSERT_TRUE(store->put_daemon(sample("y", 2)).ok());
  ASSERT_TRUE(store->remove_daemon("x").ok());
  ASSERT_TRUE(store->remove_daemon("x").ok());  // again: not an error
  ASSERT_TRUE(store->remove_daemon("never").ok());
  auto all = store->daemons();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].id, "y");
  // x's mountpoints are free again.
  ASSERT_TRUE(store->put_daemon(sample("x", 2)).ok());
}

TEST(ManagerStore, EventsOrderLimitFilter) {
  test::TempDir dir;
  auto store = open_ok(dir / "ferry.db");
  ASSERT_TRUE(store);
  const EventKind kinds[] = {EventKind::kStart,   EventKind::kDeath,    EventKind::kFailover,
                             EventKind::kRestart, EventKind::kUpgrade,  EventKind::kRollback,
                             EventKind::kFailure, EventKind::kReattach, EventKind::kStop};
  std::vector<int64_t> seqs;
  for (int64_t n = 0; n < 30; ++n) {
    EventRecord e = event(n % 3 == 0 ? "a" : "b", kinds[n % 9], n);
    e.seq = 999;  // ignored
    auto seq = store->append_event(e);
    ASSERT_TRUE(seq.ok()) << seq.error().message;
    if (!seqs.empty()) {
      EXPECT_GT(*seq, seqs.back());
    }
    seqs.push_back(*seq);
  }
  auto all = store->events();
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 30u);
  for (int64_t n = 0; n < 30; ++n) {
    const EventRecord& e = (*all)[static_cast<size_t>(n)];
    EventRecord want = event(n % 3 == 0 ? "a" : "b", kinds[n % 9], n);
    EXPECT_EQ(e.seq, seqs[static_cast<size_t>(n)]);
    EXPECT_EQ(e.time_ms, want.time_ms);
    EXPECT_EQ(e.daemon_id, want.daemon_id);
    EXPECT_EQ(e.kind, want.kind);
    EXPECT_EQ(e.old_pid, want.old_pid);
    EXPECT_EQ(e.new_pid, want.new_pid);
    EXPECT_DOUBLE_EQ(e.duration_ms, want.duration_ms);
    EXPECT_EQ(e.ok, want.ok);
    EXPECT_EQ(e.detail, want.detail);
  }
  // The newest 5, oldest first.
  auto last5 = store->events(5);
  ASSERT_TRUE(last5.ok());
  ASSERT_EQ(last5->size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ((*last5)[i].seq, seqs[25 + i]);
  // Filtered by daemon: n = 0, 3, ..., 27 belong to "a"; the newest 4 are 18 21 24 27.
  auto a4 = store->events(4, "a");
  ASSERT_TRUE(a4.ok());
  ASSERT_EQ(a4->size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*a4)[i].daemon_id, "a");
    EXPECT_EQ((*a4)[i].detail, "event " + std::to_string(18 + 3 * i));
  }
  auto b_all = store->events(1000, "b");
  ASSERT_TRUE(b_all.ok());
  EXPECT_EQ(b_all->size(), 20u);
  auto none = store->events(1000, "nobody");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto zero = store->events(0);
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->empty());
  auto huge = store->events(std::numeric_limits<size_t>::max());
  ASSERT_TRUE(huge.ok());
  EXPECT_EQ(huge->size(), 30u);

  // time_ms 0 means "now".
  EventRecord now = event("a", EventKind::kStop, 0);
  now.time_ms = 0;
  ASSERT_TRUE(store->append_event(now).ok());
  auto newest = store->events(1);
  ASSERT_TRUE(newest.ok());
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_GT((*newest)[0].time_ms, 1700000000000);
}

TEST(ManagerStore, Settings) {
  test::TempDir dir;
  auto store = open_ok(dir / "ferry.db");
  ASSERT_TRUE(store);
  auto missing = store->setting("nydusd_path");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(store->set_setting("nydusd_path", "/opt/ferryd-1").ok());
  ASSERT_TRUE(store->set_setting("nydusd_path", "/opt/ferryd-2").ok());
  ASSERT_TRUE(store->set_setting("empty", "").ok());
  auto v = store->setting("nydusd_path");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ(**v, "/opt/ferryd-2");
  auto e = store->setting("empty");
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ(**e, "");
}

TEST(ManagerStore, ReopenKeepsData) {
  test::TempDir dir;
  const std::string path = dir / "ferry.db";
  DaemonRecord r = sample("keep", 2);
  int64_t seq = 0;
  {
    auto store = open_ok(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->put_daemon(r).ok());
    auto s = store->append_event(event("keep", EventKind::kFailover, 1));
    ASSERT_TRUE(s.ok());
    seq = *s;
    ASSERT_TRUE(store->set_setting("nydusd_path", "/x").ok());
  }
  auto store = open_ok(path);
  ASSERT_TRUE(store);
  auto all = store->daemons();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  expect_same((*all)[0], r);
  auto ev = store->events();
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].seq, seq);
  EXPECT_EQ((*ev)[0].kind, EventKind::kFailover);
  auto next = store->append_event(event("keep", EventKind::kStop, 2));
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, seq);
  EXPECT_EQ(**store->setting("nydusd_path"), "/x");
}

TEST(ManagerStore, NewerSchemaRefused) {
  test::TempDir dir;
  const std::string path = dir / "ferry.db";
  { ASSERT_TRUE(open_ok(path)); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 7", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = ManagerStore::open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, EPROTO);
  EXPECT_THAT(s.error().message, HasSubstr(path));
  EXPECT_THAT(s.error().message, HasSubstr("schema version 7"));
  EXPECT_THAT(s.error().message, HasSubstr("understands version 2"));
}

// A version-1 database (before containerd's snapshots) is upgraded in place: its daemons stay,
// the snapshots table appears.
TEST(ManagerStore, VersionOneGainsTheSnapshotsTable) {
  test::TempDir dir;
  const std::string path = dir / "ferry.db";
  {
    auto s = ManagerStore::open(path);
    ASSERT_TRUE(s.ok()) << s.error().message;
    ASSERT_TRUE((*s)->put_daemon(sample("d1")).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP INDEX snapshots_by_parent; DROP TABLE snapshots; PRAGMA user_version = 1",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = ManagerStore::open(path);
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto daemons = (*s)->daemons();
  ASSERT_TRUE(daemons.ok());
  ASSERT_EQ(daemons->size(), 1U);
  SnapshotRecord want;
  want.key = "k";
  auto made = (*s)->create_snapshot(want, [](const SnapshotRecord&) { return ok_status(); });
  ASSERT_TRUE(made.ok()) << made.error().message;
  EXPECT_EQ((*s)->snapshot("k")->id, made->id);
}

// A snapshot whose files cannot be made is not recorded.
TEST(ManagerStore, ASnapshotIsRecordedOnlyWithItsFiles) {
  test::TempDir dir;
  auto s = ManagerStore::open(dir / "ferry.db");
  ASSERT_TRUE(s.ok());
  SnapshotRecord want;
  want.key = "k";
  auto failed = (*s)->create_snapshot(want, [](const SnapshotRecord&) -> Status { return Error{ENOSPC, "full"}; });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ENOSPC);
  EXPECT_EQ((*s)->snapshot("k").error().code, ENOENT);
  EXPECT_TRUE((*s)->snapshots()->empty());
}

TEST(ManagerStore, CorruptFileRefused) {
  test::TempDir dir;
  const std::string path = dir / "ferry.db";
  {
    std::mt19937 rng(7);
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(rng() & 0xff));
  }
  auto s = ManagerStore::open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message, HasSubstr(path));
  EXPECT_THAT(s.error().message, HasSubstr("not a database"));
  // The file is left for the operator to inspect.
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
}

TEST(ManagerStore, DamagedDatabaseRefused) {
  test::TempDir dir;
  const std::string path = dir / "ferry.db";
  {
    auto store = open_ok(path);
    ASSERT_TRUE(store);
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(store->put_daemon(sample("d" + std::to_string(i), 2)).ok());
  }
  // Keep the header (page 1) intact, overwrite the pages after it.
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(4096 + 100);
    for (int i = 0; i < 16384; ++i) f.put(static_cast<char>(0xa5));
  }
  auto s = ManagerStore::open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message, HasSubstr(path));
}

TEST(ManagerStore, PathIsADirectory) {
  test::TempDir dir;
  auto s = ManagerStore::open(dir.path());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message, HasSubstr(dir.path()));
}

TEST(ManagerStore, ConcurrentWritersFromThreads) {
  test::TempDir dir;
  const std::string path = dir / "ferry.db";
  auto store = open_ok(path);
  ASSERT_TRUE(store);
  // A second connection to the same file, as a second manager process would have: writers on
  // both must wait for each other (busy_timeout), not fail.
  auto second = open_ok(path);
  ASSERT_TRUE(second);
  constexpr int kThreads = 8;
  constexpr int kEach = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ManagerStore& s = t % 2 == 0 ? *store : *second;
      for (int i = 0; i < kEach; ++i) {
        const std::string id = "t" + std::to_string(t);
        DaemonRecord r = sample(id, 1 + i % 3);
        r.failovers = static_cast<uint64_t>(i);
        if (!s.put_daemon(r).ok()) ++failures;
        if (!s.append_event(event(id, EventKind::kFailover, i)).ok()) ++failures;
        if (!s.set_setting(id, std::to_string(i)).ok()) ++failures;
        auto all = s.daemons();
        if (!all.ok()) {
          ++failures;
        } else {
          for (const auto& d : *all) {
            if (d.mounts.empty()) ++failures;  // a reader never sees a daemon without its mounts
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto all = store->daemons();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), static_cast<size_t>(kThreads));
  for (const auto& d : *all) EXPECT_EQ(d.failovers, static_cast<uint64_t>(kEach - 1));
  auto ev = second->events(100000);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->size(), static_cast<size_t>(kThreads * kEach));
  for (size_t i = 1; i < ev->size(); ++i) EXPECT_GT((*ev)[i].seq, (*ev)[i - 1].seq);
  for (int t = 0; t < kThreads; ++t) {
    auto v = store->setting("t" + std::to_string(t));
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(**v, std::to_string(kEach - 1));
  }
}

}  // namespace
}  // namespace ferry::manager
