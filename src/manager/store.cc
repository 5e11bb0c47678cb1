#include "manager/store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <map>
#include <mutex>

#include "common/dirs.h"
#include "common/unique_fd.h"
#include "manager/store_db.h"

namespace ferry::manager {
namespace {

// 2: containerd snapshots (snapshot_records.cc). Opening a version-1 file adds the table (every
// CREATE below is IF NOT EXISTS), so an upgraded manager keeps its daemon records.
constexpr int kSchemaVersion = 2;
constexpr int kBusyTimeoutMs = 5000;
// The event history is bounded so a flapping daemon cannot grow the database without limit;
// the newest events are what an operator reads.
constexpr int64_t kMaxEvents = 100000;

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS daemons (
  id TEXT PRIMARY KEY NOT NULL,
  pid INTEGER NOT NULL,
  start_time INTEGER NOT NULL,
  api_socket TEXT NOT NULL,
  supervisor_path TEXT NOT NULL,
  mountpoint TEXT NOT NULL,
  shared INTEGER NOT NULL,
  binary TEXT NOT NULL,
  version TEXT NOT NULL,
  policy TEXT NOT NULL,
  failover_policy TEXT NOT NULL,
  threads INTEGER NOT NULL,
  failovers INTEGER NOT NULL,
  restarts INTEGER NOT NULL,
  upgrades INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mounts (
  daemon_id TEXT NOT NULL REFERENCES daemons(id) ON DELETE CASCADE,
  mountpoint TEXT NOT NULL UNIQUE,
  bootstrap TEXT NOT NULL,
  config_json TEXT NOT NULL,
  daemon_path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mounts_by_daemon ON mounts(daemon_id);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ms INTEGER NOT NULL,
  daemon_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  old_pid INTEGER NOT NULL,
  new_pid INTEGER NOT NULL,
  duration_ms REAL NOT NULL,
  ok INTEGER NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_daemon ON events(daemon_id, seq);
CREATE TABLE IF NOT EXISTS settings (
  key TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  parent TEXT NOT NULL,
  kind INTEGER NOT NULL,
  labels TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL,
  size INTEGER NOT NULL,
  inodes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_by_parent ON snapshots(parent);
)";

// sqlite3 stores signed 64-bit integers; unsigned counters and start times travel
// bit-for-bit so even values above INT64_MAX read back unchanged.
int64_t to_db(uint64_t v) {
  return static_cast<int64_t>(v);
}
uint64_t from_db(int64_t v) {
  return static_cast<uint64_t>(v);
}

}  // namespace

namespace {


Status create_schema(ManagerStore::Impl& impl) {
  // Exclusive from the first read of user_version to the last CREATE: two managers opening a
  // fresh file at once must not both decide to create it.
  FERRY_TRY(impl.exec("BEGIN IMMEDIATE", "starting the schema transaction"));
  auto fail = [&](Error e) -> Status {
    Status rb = impl.exec("ROLLBACK", "rolling back the schema transaction");
    if (!rb.ok()) spdlog::warn("{}", rb.error().message);
    return e;
  };
  auto version = impl.pragma_int("PRAGMA user_version");
  if (!version.ok()) return fail(std::move(version).error());
  if (*version > kSchemaVersion) {
    return fail(
        Error{EPROTO, "'" + impl.path + "' has schema version " + std::to_string(*version) +
                          "; this ferry-snapshotter understands version " + std::to_string(kSchemaVersion) +
                          " at most: run the newer ferry-snapshotter that wrote it, or move the file aside"});
  }
  if (*version < kSchemaVersion) {
    Status st = impl.exec(kSchema, "creating the schema");
    if (!st.ok()) return fail(std::move(st).error());
    st = impl.exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str(),
                   "setting user_version");
    if (!st.ok()) return fail(std::move(st).error());
  }
  return impl.exec("COMMIT", "committing the schema");
}

Status prepare_all(ManagerStore::Impl& impl) {
  struct Entry {
    StmtPtr* slot;
    const char* sql;
  };
  const Entry entries[] = {
      {&impl.begin_immediate, "BEGIN IMMEDIATE"},
      {&impl.begin_read, "BEGIN DEFERRED"},
      {&impl.commit, "COMMIT"},
      {&impl.rollback, "ROLLBACK"},
      {&impl.delete_mounts, "DELETE FROM mounts WHERE daemon_id = ?1"},
      {&impl.delete_daemon, "DELETE FROM daemons WHERE id = ?1"},
      {&impl.insert_daemon,
       "INSERT INTO daemons (id, pid, start_time, api_socket, supervisor_path, mountpoint, shared, binary, "
       "version, "
       "policy, failover_policy, threads, failovers, restarts, upgrades) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"},
      {&impl.insert_mount,
       "INSERT INTO mounts (daemon_id, mountpoint, bootstrap, config_json, daemon_path) VALUES (?1, ?2, ?3, "
       "?4, ?5)"},
      {&impl.select_daemons,
       "SELECT id, pid, start_time, api_socket, supervisor_path, mountpoint, shared, binary, version, "
       "policy, "
       "failover_policy, threads, failovers, restarts, upgrades FROM daemons ORDER BY id"},
      {&impl.select_mounts,
       "SELECT daemon_id, mountpoint, bootstrap, config_json, daemon_path FROM mounts ORDER BY daemon_id, "
       "mountpoint"},
      {&impl.insert_event,
       "INSERT INTO events (time_ms, daemon_id, kind, old_pid, new_pid, duration_ms, ok, detail) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
      {&impl.prune_events, "DELETE FROM events WHERE seq <= ?1"},
      {&impl.select_events,
       "SELECT seq, time_ms, daemon_id, kind, old_pid, new_pid, duration_ms, ok, detail FROM ("
       "SELECT * FROM events WHERE ?1 = '' OR daemon_id = ?1 ORDER BY seq DESC LIMIT ?2) ORDER BY seq"},
      {&impl.upsert_setting,
       "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = "
       "excluded.value"},
      {&impl.select_setting, "SELECT value FROM settings WHERE key = ?1"},
  };
  for (const Entry& e : entries) {
    FERRY_ASSIGN(*e.slot, impl.prepare(e.sql));
  }
  return ok_status();
}

// Makes sure the file exists with mode 0600 before sqlite opens it: sqlite would create it
// with 0644 & ~umask, and its -wal/-shm files copy the main file's mode.
Status create_private_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return errno_error("cannot open manager database '" + path + "'");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat '" + path + "'");
  if (!S_ISREG(st.st_mode)) return Error{EINVAL, "'" + path + "' is not a regular file"};
  if ((st.st_mode & 07777) != 0600 && ::fchmod(fd.get(), 0600) != 0) {
    return errno_error("cannot make '" + path + "' private (chmod 0600)");
  }
  return ok_status();
}

Result<std::unique_ptr<ManagerStore::Impl>> open_impl(const std::string& path) {
  if (path.empty()) return Error{EINVAL, "manager database path is empty"};
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) FERRY_TRY(make_dirs(path.substr(0, slash)));
  FERRY_TRY(create_private_file(path));

  auto impl = std::make_unique<ManagerStore::Impl>();
  impl->path = path;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  impl->db.reset(raw);  // closed by the Db deleter even when the open failed
  if (rc != SQLITE_OK) return impl->error(rc, "opening the manager database");
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);

  // The first statement reads the header: a file that is not a database fails here.
  auto journal = impl->pragma_text("PRAGMA journal_mode = WAL");
  if (!journal.ok()) {
    return Error{journal.error().code, "'" + path + "' is not a readable manager database (" +
                                           sqlite3_errmsg(impl->db.get()) +
                                           "); move it aside to start with no records"};
  }
  if (*journal != "wal") {
    spdlog::warn("manager database '{}' uses journal mode '{}' (WAL unavailable on this filesystem?)", path,
                 *journal);
  }
  auto check = impl->pragma_text("PRAGMA quick_check");
  if (!check.ok() || *check != "ok") {
    std::string why = check.ok() ? *check : check.error().message;
    return Error{EPROTO, "'" + path + "' is damaged (" + why + "); move it aside to start with no records"};
  }
  FERRY_TRY(impl->exec("PRAGMA synchronous = NORMAL", "setting synchronous"));
  FERRY_TRY(impl->exec("PRAGMA foreign_keys = ON", "enabling foreign keys"));
  FERRY_TRY(create_schema(*impl));
  FERRY_TRY(prepare_all(*impl));
  return impl;
}

}  // namespace

ManagerStore::ManagerStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ManagerStore::~ManagerStore() = default;

Result<std::unique_ptr<ManagerStore>> ManagerStore::open(const std::string& path) {
  FERRY_ASSIGN(auto impl, open_impl(path));
  return std::make_unique<ManagerStore>(std::move(impl));
}

Status ManagerStore::put_daemon(const DaemonRecord& r) {
  if (r.id.empty()) return Error{EINVAL, "a daemon record needs an id"};
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, true);
  FERRY_TRY(tx.begin());
  const std::string what = "saving daemon '" + r.id + "'";
  FERRY_TRY(impl_->run(StmtUse(impl_->delete_mounts.get()).bind(1, r.id), what));
  FERRY_TRY(impl_->run(StmtUse(impl_->delete_daemon.get()).bind(1, r.id), what));
  {
    StmtUse use(impl_->insert_daemon.get());
    use.bind(1, r.id)
        .bind(2, r.pid)
        .bind(3, to_db(r.start_time))
        .bind(4, r.api_socket)
        .bind(5, r.supervisor_path)
        .bind(6, r.mountpoint)
        .bind(7, int64_t{r.shared ? 1 : 0})
        .bind(8, r.binary)
        .bind(9, r.version)
        .bind(10, to_string(r.policy))
        .bind(11, r.failover_policy)
        .bind(12, int64_t{r.threads})
        .bind(13, to_db(r.failovers))
        .bind(14, to_db(r.restarts))
        .bind(15, to_db(r.upgrades));
    FERRY_TRY(impl_->run(use, what));
  }
  for (const MountRecord& m : r.mounts) {
    StmtUse use(impl_->insert_mount.get());
    use.bind(1, r.id)
        .bind(2, m.mountpoint)
        .bind(3, m.bootstrap)
        .bind(4, m.config_json)
        .bind(5, m.daemon_path);
    Status st = impl_->run(use, what + ": mount '" + m.mountpoint + "'");
    if (!st.ok()) {
      if (st.error().code == EEXIST) {
        return Error{EEXIST, what + ": mountpoint '" + m.mountpoint +
                                 "' is already recorded (for this or another daemon) in '" + impl_->path +
                                 "'"};
      }
      return st;
    }
  }
  return tx.commit();
}

Status ManagerStore::remove_daemon(std::string_view id) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, true);
  FERRY_TRY(tx.begin());
  const std::string what = "removing daemon '" + std::string(id) + "'";
  FERRY_TRY(impl_->run(StmtUse(impl_->delete_mounts.get()).bind(1, id), what));
  FERRY_TRY(impl_->run(StmtUse(impl_->delete_daemon.get()).bind(1, id), what));
  return tx.commit();
}

Result<std::vector<DaemonRecord>> ManagerStore::daemons() const {
  std::lock_guard lock(impl_->mu);
  // One read transaction: daemons and mounts come from the same version of the database.
  Transaction tx(*impl_, false);
  FERRY_TRY(tx.begin());
  std::vector<DaemonRecord> out;
  std::map<std::string, size_t> index;
  {
    StmtUse use(impl_->select_daemons.get());
    int rc = 0;
    while ((rc = use.step()) == SQLITE_ROW) {
      DaemonRecord r;
      r.id = use.text(0);
      r.pid = use.int64(1);
      r.start_time = from_db(use.int64(2));
      r.api_socket = use.text(3);
      r.supervisor_path = use.text(4);
      r.mountpoint = use.text(5);
      r.shared = use.int64(6) != 0;
      r.binary = use.text(7);
      r.version = use.text(8);
      auto policy = parse_recover_policy(use.text(9));
      if (!policy.ok()) {
        return Error{EPROTO, "daemon '" + r.id + "' in '" + impl_->path + "' has recover policy " +
                                 policy.error().message};
      }
      r.policy = *policy;
      r.failover_policy = use.text(10);
      r.threads = static_cast<unsigned>(use.int64(11));
      r.failovers = from_db(use.int64(12));
      r.restarts = from_db(use.int64(13));
      r.upgrades = from_db(use.int64(14));
      index[r.id] = out.size();
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return impl_->error(rc, "reading daemons");
  }
  {
    StmtUse use(impl_->select_mounts.get());
    int rc = 0;
    while ((rc = use.step()) == SQLITE_ROW) {
      auto it = index.find(use.text(0));
      if (it == index.end()) continue;  // foreign keys make this impossible; skip rather than fail
      MountRecord m;
      m.mountpoint = use.text(1);
      m.bootstrap = use.text(2);
      m.config_json = use.text(3);
      m.daemon_path = use.text(4);
      out[it->second].mounts.push_back(std::move(m));
    }
    if (rc != SQLITE_DONE) return impl_->error(rc, "reading mounts");
  }
  FERRY_TRY(tx.commit());
  return out;
}

Result<int64_t> ManagerStore::append_event(const EventRecord& r) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, true);
  FERRY_TRY(tx.begin());
  const std::string what =
      "recording a " + std::string(to_string(r.kind)) + " event of daemon '" + r.daemon_id + "'";
  {
    StmtUse use(impl_->insert_event.get());
    use.bind(1, r.time_ms != 0 ? r.time_ms : unix_now_ms())
        .bind(2, r.daemon_id)
        .bind(3, to_string(r.kind))
        .bind(4, r.old_pid)
        .bind(5, r.new_pid)
        .bind(6, r.duration_ms)
        .bind(7, int64_t{r.ok ? 1 : 0})
        .bind(8, r.detail);
    FERRY_TRY(impl_->run(use, what));
  }
  int64_t seq = sqlite3_last_insert_rowid(impl_->db.get());
  if (seq > kMaxEvents)
    FERRY_TRY(impl_->run(StmtUse(impl_->prune_events.get()).bind(1, seq - kMaxEvents), what));
  FERRY_TRY(tx.commit());
  return seq;
}

Result<std::vector<EventRecord>> ManagerStore::events(size_t limit, std::string_view daemon_id) const {
  std::vector<EventRecord> out;
  if (limit == 0) return out;
  const auto capped = static_cast<int64_t>(std::min<size_t>(limit, std::numeric_limits<int64_t>::max()));
  std::lock_guard lock(impl_->mu);
  StmtUse use(impl_->select_events.get());
  use.bind(1, daemon_id).bind(2, capped);
  if (use.bind_status() != SQLITE_OK) return impl_->error(use.bind_status(), "reading events");
  int rc = 0;
  while ((rc = use.step()) == SQLITE_ROW) {
    EventRecord e;
    e.seq = use.int64(0);
    e.time_ms = use.int64(1);
    e.daemon_id = use.text(2);
    std::string kind = use.text(3);
    auto parsed = parse_event_kind(kind);
    if (!parsed) {
      return Error{EPROTO, "event " + std::to_string(e.seq) + " in '" + impl_->path + "' has unknown kind '" +
                               kind + "'"};
    }
    e.kind = *parsed;
    e.old_pid = use.int64(4);
    e.new_pid = use.int64(5);
    e.duration_ms = use.real(6);
    e.ok = use.int64(7) != 0;
    e.detail = use.text(8);
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return impl_->error(rc, "reading events");
  return out;
}

Status ManagerStore::set_setting(std::string_view key, std::string_view value) {
  std::lock_guard lock(impl_->mu);
  StmtUse use(impl_->upsert_setting.get());
  use.bind(1, key).bind(2, value);
  return impl_->run(use, "saving setting '" + std::string(key) + "'");
}

Result<std::optional<std::string>> ManagerStore::setting(std::string_view key) const {
  std::lock_guard lock(impl_->mu);
  StmtUse use(impl_->select_setting.get());
  use.bind(1, key);
  if (use.bind_status() != SQLITE_OK) return impl_->error(use.bind_status(), "reading setting");
  int rc = use.step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(use.text(0));
  if (rc != SQLITE_DONE) return impl_->error(rc, "reading setting '" + std::string(key) + "'");
  return std::optional<std::string>();
}

}  // namespace ferry::manager
