#include "manager/daemon_manager.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "http/error_status.h"
#include "ipc/state_envelope.h"
#include "manager/daemon_client.h"
#include "manager/managed_daemon.h"
#include "manager/mount_ops.h"
#include "manager/storage_metrics.h"

namespace ferry::manager {
namespace {

}  // namespace

Error internal(Error e) {
  if (http::http_status_for_errno(e.code) != 500) e.code = EIO;
  return e;
}

namespace {

std::string normalize(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

DaemonManager::DaemonManager(ManagerConfig config, std::string binary, ManagerStore& store,
                             ManagerMetrics& metrics, Env& env)
    : config_(std::move(config)), store_(store), metrics_(metrics), env_(env), binary_(std::move(binary)) {}

Result<std::unique_ptr<DaemonManager>> DaemonManager::create(ManagerConfig config, std::string binary,
                                                             ManagerStore& store, ManagerMetrics& metrics,
                                                             Env& env) {
  for (const auto& dir : {config.supervisor_dir(), config.daemons_dir(), config.log_dir()}) {
    FERRY_TRY(make_dirs(dir));
  }
  auto m = std::make_unique<DaemonManager>(std::move(config), std::move(binary), store, metrics, env);
  DaemonManager* raw = m.get();
  FERRY_ASSIGN(m->watcher_,
               DeathWatcher::create([raw](const std::string& key, int pid) { raw->on_death(key, pid); }));
  m->recovery_thread_ = std::thread([raw] { raw->recovery_loop(); });
  return m;
}

DaemonManager::~DaemonManager() {
  shutdown();
}

void DaemonManager::shutdown() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (recovery_thread_.joinable()) recovery_thread_.join();
  watcher_.reset();  // no death notice after this
  std::vector<std::shared_ptr<Daemon>> all;
  {
    std::lock_guard lk(mu_);
    for (auto& [id, d] : daemons_) all.push_back(d);
  }
  for (auto& d : all) {
    std::lock_guard op(d->op_mu);
    kill_standby(*d);
    // Closing the supervisor drops the manager's copy of the /dev/fuse fd; the daemon keeps
    // its own, so the mount stays and serves.
    d->supervisor.reset();
  }
}

std::string DaemonManager::binary() const {
  std::lock_guard lk(mu_);
  return binary_;
}

std::shared_ptr<DaemonManager::Daemon> DaemonManager::find(const std::string& id) const {
  std::lock_guard lk(mu_);
  auto it = daemons_.find(id);
  return it == daemons_.end() ? nullptr : it->second;
}

void DaemonManager::publish(Daemon& d, const std::string& status) {
  std::lock_guard lk(mu_);
  d.view = d.rec;
  d.status = status;
}

Status DaemonManager::persist(Daemon& d) {
  auto st = store_.put_daemon(d.rec);
  if (!st) spdlog::error("daemon {}: saving its record: {}", d.rec.id, st.error().message);
  return st;
}

void DaemonManager::record(EventRecord event) {
  if (event.time_ms == 0) event.time_ms = unix_now_ms();
  metrics_.count(event.kind);
  if (event.duration_ms > 0) metrics_.observe(event.kind, event.duration_ms);
  auto level = event.ok ? spdlog::level::info : spdlog::level::warn;
  spdlog::log(level, "daemon {}: {} (pid {} -> {}, {:.3f} ms){}{}", event.daemon_id, to_string(event.kind),
              event.old_pid, event.new_pid, event.duration_ms, event.detail.empty() ? "" : ": ",
              event.detail);
  auto r = store_.append_event(event);
  if (!r) spdlog::error("recording a {} event: {}", to_string(event.kind), r.error().message);
}

Result<MountAnswer> DaemonManager::mount(const MountRequest& in) {
  MountRequest request = in;
  request.mountpoint = normalize(request.mountpoint);
  FERRY_TRY(check_abs_dir(request.mountpoint, "mountpoint"));
  FERRY_TRY(check_abs_file(request.bootstrap, "bootstrap"));
  if (request.config_json.empty()) request.config_json = "{}";
  auto parsed = nlohmann::json::parse(request.config_json, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return Error{EINVAL, "config must be a JSON object (or a string holding one)"};
  }
  {
    std::lock_guard lk(mu_);
    if (stopping_) return Error{EAGAIN, "the manager is shutting down"};
    auto it = mount_index_.find(request.mountpoint);
    if (it != mount_index_.end()) {
      return Error{EEXIST,
                   "'" + request.mountpoint + "' is already mounted" +
                       (it->second.empty() ? " (a mount is in progress)" : " by daemon " + it->second)};
    }
    mount_index_[request.mountpoint] = "";  // reserved while we work
  }
  // Their errors are final: a failure of theirs is a 500 (internal()), a refusal of the image
  // or config by ferryd a 400 with ferryd's reason.
  auto answer = config_.daemon_mode == DaemonMode::kShared ? mount_shared(request) : mount_dedicated(request);
  std::lock_guard lk(mu_);
  if (!answer) {
    mount_index_.erase(request.mountpoint);
    return std::move(answer).error();
  }
  mount_index_[request.mountpoint] = answer->daemon_id;
  return answer;
}

std::shared_ptr<DaemonManager::Daemon> DaemonManager::new_daemon(const std::string& mountpoint, bool shared) {
  auto d = std::make_shared<Daemon>();
  {
    std::lock_guard lk(mu_);
    do d->rec.id = random_id();
    while (daemons_.count(d->rec.id) != 0);
  }
  d->rec.supervisor_path = config_.supervisor_dir() + "/" + d->rec.id + ".sock";
  d->rec.mountpoint = mountpoint;
  d->rec.shared = shared;
  d->rec.binary = binary();
  d->rec.policy = config_.daemon.recover_policy;
  d->rec.failover_policy = config_.daemon.failover_policy;
  d->rec.threads = config_.daemon.threads_number;
  return d;
}

Result<MountAnswer> DaemonManager::mount_dedicated(const MountRequest& request) {
  auto d = new_daemon(request.mountpoint, false);
  const std::string id = d->rec.id;
  d->rec.mounts.push_back(MountRecord{request.mountpoint, request.bootstrap, request.config_json, "/"});

  std::lock_guard op(d->op_mu);
  const std::string dir = config_.daemons_dir() + "/" + id;
  auto cleanup_files = [&] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  };
  if (auto made = make_dirs(dir); !made) return internal(std::move(made).error());
  int mounts_before = mount_count(request.mountpoint);
  auto started = [&]() -> Status {
    FERRY_ASSIGN(d->supervisor, ipc::Supervisor::listen(d->rec.supervisor_path, supervisor_options()));
    return start_fresh(*d, d->rec.binary);
  }();
  if (!started) {
    // A daemon that mounted and then failed leaves a dead mount behind: remove ours only.
    while (mount_count(request.mountpoint) > mounts_before) {
      if (!umount_one(request.mountpoint)) break;
    }
    d->supervisor.reset();
    cleanup_files();
    Error e = d->refusal.empty()
                  ? internal(std::move(started).error())
                  : Error{EINVAL, "ferryd refused to serve '" + request.bootstrap + "': " + d->refusal};
    e = std::move(e).context("mounting '" + request.mountpoint + "'");
    record({.daemon_id = id, .kind = EventKind::kFailure, .ok = false, .detail = e.message});
    return e;
  }
  {
    std::lock_guard lk(mu_);
    daemons_[id] = d;
  }
  (void)persist(*d);
  record({.daemon_id = id,
          .kind = EventKind::kStart,
          .new_pid = d->proc.pid(),
          .detail = "serving '" + request.bootstrap + "' at '" + request.mountpoint + "'"});
  publish(*d, "");
  (void)watch(*d);
  ensure_standby(*d);
  return MountAnswer{id, request.mountpoint};
}

Result<std::shared_ptr<DaemonManager::Daemon>> DaemonManager::ensure_shared_daemon() {
  std::lock_guard shared(shared_mu_);
  {
    std::lock_guard lk(mu_);
    if (!shared_id_.empty()) {
      auto it = daemons_.find(shared_id_);
      if (it != daemons_.end()) return it->second;
    }
  }
  auto d = new_daemon(config_.shared_mnt(), true);
  const std::string id = d->rec.id;

  std::lock_guard op(d->op_mu);
  const std::string dir = config_.daemons_dir() + "/" + id;
  FERRY_TRY(make_dirs(dir));
  FERRY_TRY(make_dirs(config_.shared_mnt()));
  // No live shared daemon is known: whatever is mounted at its root is a leftover.
  FERRY_TRY(umount_all(config_.shared_mnt()));
  auto started = [&]() -> Status {
    FERRY_ASSIGN(d->supervisor, ipc::Supervisor::listen(d->rec.supervisor_path, supervisor_options()));
    return start_fresh(*d, d->rec.binary);
  }();
  if (!started) {
    (void)umount_all(config_.shared_mnt());
    d->supervisor.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return std::move(started).error().context("starting the shared daemon");
  }
  {
    std::lock_guard lk(mu_);
    daemons_[id] = d;
    shared_id_ = id;
  }
  (void)persist(*d);
  record({.daemon_id = id,
          .kind = EventKind::kStart,
          .new_pid = d->proc.pid(),
          .detail = "shared daemon serving '" + config_.shared_mnt() + "'"});
  publish(*d, "");
  (void)watch(*d);
  ensure_standby(*d);
  return d;
}

Result<MountAnswer> DaemonManager::mount_shared(const MountRequest& request) {
  auto ensured = ensure_shared_daemon();
  if (!ensured) {
    Error e = internal(std::move(ensured).error()).context("mounting '" + request.mountpoint + "'");
    record({.daemon_id = "", .kind = EventKind::kFailure, .ok = false, .detail = e.message});
    return e;
  }
  auto d = std::move(*ensured);
  std::lock_guard op(d->op_mu);
  auto failed = [&](Error e) {
    e = std::move(e).context("mounting '" + request.mountpoint + "'");
    record({.daemon_id = d->rec.id, .kind = EventKind::kFailure, .ok = false, .detail = e.message});
    return e;
  };
  if (d->removed || d->dead || !d->proc.valid()) {
    return failed(Error{
        EIO, "the shared daemon " + d->rec.id + " is not serving (state DEAD); see " + log_file(d->rec.id)});
  }
  std::string name;
  do {
    name = random_id();
  } while (std::any_of(d->rec.mounts.begin(), d->rec.mounts.end(),
                       [&](const MountRecord& m) { return m.daemon_path == "/" + name; }));
  const std::string sub = "/" + name;
  // The standby holds the state without this image: were the daemon to die between the
  // attach and a new standby, it must not start serving a mount it knows nothing of.
  kill_standby(*d);
  auto client = env_.api(d->rec.api_socket, d->rec.id);
  if (auto st = client->attach(sub, request.bootstrap, request.config_json); !st) {
    ensure_standby(*d);
    // A 400 from ferryd: it refused this image or config (its message says why). Anything
    // else (the daemon not answering, say) is the manager's failure.
    Error e = std::move(st).error();
    if (e.code != EINVAL) e = internal(std::move(e));
    return failed(std::move(e).context("attaching '" + request.bootstrap + "' to the shared daemon " + d->rec.id));
  }
  const std::string source = config_.shared_mnt() + sub;
  if (auto st = bind_mount(source, request.mountpoint); !st) {
    (void)client->detach(sub);
    (void)fetch_state(*d, d->rec.api_socket);
    ensure_standby(*d);
    return failed(internal(std::move(st).error()));
  }
  d->rec.mounts.push_back(MountRecord{request.mountpoint, request.bootstrap, request.config_json, sub});
  (void)persist(*d);
  if (auto st = fetch_state(*d, d->rec.api_socket); !st) {
    record(
        {.daemon_id = d->rec.id,
         .kind = EventKind::kFailure,
         .ok = false,
         .detail = "saving the state after attaching '" + request.mountpoint + "': " + st.error().message});
  }
  ensure_standby(*d);
  publish(*d, "");
  return MountAnswer{d->rec.id, request.mountpoint};
}

Status DaemonManager::umount(const std::string& in) {
  const std::string mountpoint = normalize(in);
  std::shared_ptr<Daemon> d;
  {
    std::lock_guard lk(mu_);
    auto it = mount_index_.find(mountpoint);
    if (it == mount_index_.end())
      return Error{ENOENT, "nothing is mounted by the manager at '" + mountpoint + "'"};
    if (it->second.empty()) return Error{EEXIST, "a mount at '" + mountpoint + "' is still in progress"};
    auto dit = daemons_.find(it->second);
    if (dit == daemons_.end())
      return Error{ENOENT, "nothing is mounted by the manager at '" + mountpoint + "'"};
    d = dit->second;
  }
  Status st = d->rec.shared ? umount_shared(d, mountpoint) : umount_dedicated(d);
  if (!st) return internal(std::move(st).error());
  return {};
}

Status DaemonManager::umount_dedicated(const std::shared_ptr<Daemon>& d) {
  std::lock_guard op(d->op_mu);
  if (d->removed) return Error{ENOENT, "nothing is mounted by the manager at '" + d->rec.mountpoint + "'"};
  d->removed = true;
  watcher_->unwatch(d->rec.id);
  kill_standby(*d);
  const int64_t pid = d->proc.valid() ? d->proc.pid() : 0;
  std::string how = "was not running";
  if (d->proc.valid()) {
    // SIGTERM: ferryd stops, unmounts and exits 0.
    (void)d->proc.signal(SIGTERM);
    auto exited = d->proc.wait_exit(std::chrono::seconds(5));
    if (exited) {
      how = *exited;
    } else {
      how = "did not exit within 5 s of SIGTERM; killed";
      (void)d->proc.kill_and_reap();
    }
  }
  // Whatever the daemon left (it was killed, or it was dead already): detach it.
  (void)umount_all(d->rec.mountpoint);
  d->supervisor.reset();
  forget(d);
  record({.daemon_id = d->rec.id,
          .kind = EventKind::kStop,
          .old_pid = pid,
          .detail = "unmounted '" + d->rec.mountpoint + "'; daemon " + how});
  return {};
}

Status DaemonManager::umount_shared(const std::shared_ptr<Daemon>& d, const std::string& mountpoint) {
  std::lock_guard op(d->op_mu);
  auto it = std::find_if(d->rec.mounts.begin(), d->rec.mounts.end(),
                         [&](const MountRecord& m) { return m.mountpoint == mountpoint; });
  if (d->removed || it == d->rec.mounts.end()) {
    return Error{ENOENT, "nothing is mounted by the manager at '" + mountpoint + "'"};
  }
  const std::string sub = it->daemon_path;
  kill_standby(*d);  // it holds the state with this image; replaced after the detach
  (void)umount_one(mountpoint);
  (void)umount_all(mountpoint);
  if (!d->dead && d->proc.valid()) {
    auto client = env_.api(d->rec.api_socket, d->rec.id);
    if (auto st = client->detach(sub); !st) {
      spdlog::warn("daemon {}: detaching '{}': {}", d->rec.id, sub, st.error().message);
    }
  }
  d->rec.mounts.erase(it);
  (void)persist(*d);
  if (!d->dead && d->proc.valid()) {
    if (auto st = fetch_state(*d, d->rec.api_socket); !st) {
      record({.daemon_id = d->rec.id,
              .kind = EventKind::kFailure,
              .ok = false,
              .detail = "saving the state after detaching '" + mountpoint + "': " + st.error().message});
    }
  }
  ensure_standby(*d);
  publish(*d, d->dead ? "DEAD" : "");
  std::lock_guard lk(mu_);
  mount_index_.erase(mountpoint);
  return {};
}

void DaemonManager::forget(const std::shared_ptr<Daemon>& d) {
  {
    std::lock_guard lk(mu_);
    for (const auto& m : d->rec.mounts) mount_index_.erase(m.mountpoint);
    daemons_.erase(d->rec.id);
    if (shared_id_ == d->rec.id) shared_id_.clear();
  }
  if (auto st = store_.remove_daemon(d->rec.id); !st) {
    spdlog::error("daemon {}: removing its record: {}", d->rec.id, st.error().message);
  }
  (void)store_.set_setting(std::string("standby:") + d->rec.id, "");
  std::error_code ec;
  std::filesystem::remove_all(config_.daemons_dir() + "/" + d->rec.id, ec);
}

std::vector<MountView> DaemonManager::mounts() const {
  std::vector<MountView> out;
  std::lock_guard lk(mu_);
  for (const auto& [id, d] : daemons_) {
    for (const auto& m : d->view.mounts) out.push_back({m.mountpoint, m.bootstrap, id});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.mountpoint < b.mountpoint; });
  return out;
}

std::vector<DaemonView> DaemonManager::daemons() const {
  std::vector<DaemonView> out;
  {
    std::lock_guard lk(mu_);
    for (const auto& [id, d] : daemons_) out.push_back({d->view, d->status, d->standby_pid.load()});
  }
  for (auto& v : out) {
    if (!v.state.empty()) continue;
    // Bounded: a listing must not hang on a stuck daemon, but a busy one still answers.
    auto info = env_.api(v.record.api_socket, v.record.id)->info(std::chrono::milliseconds(500));
    v.state = info ? info->state : "UNKNOWN";
  }
  return out;
}

Result<std::vector<EventRecord>> DaemonManager::records(size_t limit, const std::string& daemon_id) const {
  return store_.events(limit, daemon_id);
}

std::string DaemonManager::metrics_text() const {
  std::map<std::string, int> by_state;
  for (const char* s : {"INIT", "READY", "RUNNING", "STOPPED", "RECOVERING", "DEAD", "UNKNOWN"})
    by_state[s] = 0;
  std::vector<std::pair<std::string, std::string>> storage;  // each serving daemon's own metrics
  for (const auto& v : daemons()) {
    by_state[v.state]++;
    if (v.state != "RUNNING") continue;
    // Bounded like the listing: a scrape must not hang on a stuck daemon.
    auto m = env_.api(v.record.api_socket, v.record.id)->metrics(std::chrono::milliseconds(500));
    if (m.ok()) storage.emplace_back(v.record.id, std::move(m).value());
  }
  return metrics_.render(by_state) + render_storage_metrics(storage);
}

ipc::Supervisor::Options DaemonManager::supervisor_options() {
  ipc::Supervisor::Options o;
  // Any payload version: the manager does not read the state, only refuses a torn or foreign
  // one (a daemon that died mid-save) so that it keeps the previous, good one.
  o.validate = [](std::span<const std::byte> bytes) -> Status {
    auto opened = ipc::open_envelope(bytes, UINT32_MAX);
    if (!opened) return std::move(opened).error();
    return {};
  };
  return o;
}

}  // namespace ferry::manager
