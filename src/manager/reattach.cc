// A restarted manager finds its daemons again from their records: live ones are adopted
// (pidfd, fresh state) so failover works again; dead ones are recovered per their policy; a hot
// standby left behind by a crashed manager is killed.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <charconv>

#include "manager/daemon_client.h"
#include "manager/daemon_manager.h"
#include "manager/managed_daemon.h"
#include "manager/mount_ops.h"

namespace ferry::manager {
namespace {

// "api-<n>.sock" -> n (0 when the name has another form).
unsigned api_number(const std::string& path) {
  auto slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  unsigned n = 0;
  if (name.rfind("api-", 0) == 0) std::from_chars(name.data() + 4, name.data() + name.size(), n);
  return n;
}

}  // namespace

void DaemonManager::reattach_all() {
  auto records = store_.daemons();
  if (!records) {
    spdlog::error("reading the daemon records: {}", records.error().message);
    return;
  }
  for (const auto& rec : *records) reattach(rec);
  std::vector<std::shared_ptr<Daemon>> all;
  {
    std::lock_guard lk(mu_);
    for (auto& [id, d] : daemons_) all.push_back(d);
  }
  for (auto& d : all) {
    std::lock_guard op(d->op_mu);
    ensure_standby(*d);
  }
}

void DaemonManager::reattach(const DaemonRecord& rec) {
  auto d = std::make_shared<Daemon>();
  d->rec = rec;
  d->api_seq = api_number(rec.api_socket);
  std::lock_guard op(d->op_mu);

  // A hot standby of a manager that died without cleaning up: it serves nothing, end it.
  if (auto leftover = store_.setting("standby:" + rec.id);
      leftover && leftover->has_value() && !(**leftover).empty()) {
    const std::string& text = **leftover;
    auto colon = text.find(':');
    pid_t pid = 0;
    uint64_t start = 0;
    if (colon != std::string::npos) {
      std::from_chars(text.data(), text.data() + colon, pid);
      std::from_chars(text.data() + colon + 1, text.data() + text.size(), start);
    }
    if (pid > 0) {
      if (auto p = DaemonProcess::adopt(pid, start); p) {
        (void)p->kill_and_reap();
        spdlog::info("daemon {}: killed the hot standby {} a previous manager left behind", rec.id, pid);
      }
    }
    (void)store_.set_setting("standby:" + rec.id, "");
  }
  (void)make_dirs(config_.daemons_dir() + "/" + rec.id);
  {
    std::lock_guard lk(mu_);
    daemons_[rec.id] = d;
    for (const auto& m : rec.mounts) mount_index_[m.mountpoint] = rec.id;
    if (rec.shared) shared_id_ = rec.id;
  }
  auto sup = ipc::Supervisor::listen(rec.supervisor_path, supervisor_options());
  if (sup) {
    d->supervisor = std::move(*sup);
  } else {
    record({.daemon_id = rec.id,
            .kind = EventKind::kFailure,
            .ok = false,
            .detail = "listening on the supervisor socket: " + sup.error().message});
  }

  auto adopted = rec.pid > 0 ? DaemonProcess::adopt(static_cast<pid_t>(rec.pid), rec.start_time)
                             : Result<DaemonProcess>(Error{ESRCH, "no process recorded"});
  if (adopted) {
    d->proc = std::move(*adopted);
    auto info = DaemonClient(rec.api_socket, rec.id).info(std::chrono::seconds(2));
    if (info && !info->version.empty()) d->rec.version = info->version;
    std::string detail = "pid " + std::to_string(rec.pid) + " is alive (state " +
                         (info ? info->state : "unknown: " + info.error().message) + ")";
    if (auto st = fetch_state(*d, rec.api_socket); !st) {
      detail += "; fetching its state failed, failover impossible until the next save: " + st.error().message;
    }
    (void)watch(*d);
    (void)persist(*d);
    record({.daemon_id = rec.id,
            .kind = EventKind::kReattach,
            .new_pid = rec.pid,
            .ok = true,
            .detail = detail});
    publish(*d, "");
    return;
  }
  if (rec.pid == 0) {
    // Recorded as DEAD by the previous manager.
    d->dead = true;
    publish(*d, "DEAD");
    return;
  }
  ::unlink(rec.api_socket.c_str());
  record({.daemon_id = rec.id,
          .kind = EventKind::kDeath,
          .old_pid = rec.pid,
          .ok = true,
          .detail = "died while no manager was running (" + adopted.error().message +
                    "); its FUSE connection died with the previous manager's copy of the fd, so failover is "
                    "impossible"});
  if (rec.policy == RecoverPolicy::kNone) {
    d->dead = true;
    d->rec.pid = 0;
    (void)persist(*d);
    publish(*d, "DEAD");
    return;
  }
  publish(*d, "RECOVERING");
  auto st = restart(*d, Clock::now(), rec.pid, "");
  if (st) {
    publish(*d, "");
    return;
  }
  d->dead = true;
  d->rec.pid = 0;
  (void)persist(*d);
  record({.daemon_id = rec.id,
          .kind = EventKind::kFailure,
          .old_pid = rec.pid,
          .ok = false,
          .detail = "restart after the manager's restart gave up, daemon is DEAD: " + st.error().message});
  publish(*d, "DEAD");
}

}  // namespace ferry::manager
