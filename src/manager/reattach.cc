// A restarted manager finds its daemons again from their records: live ones are adopted
// (pidfd, fresh state) so failover works again; dead ones are recovered per their policy. A hot
// standby left behind by a crashed manager is killed, unless its daemon died meanwhile and it
// took over (it starts by itself): then it is adopted as the daemon.
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

void DaemonManager::reattach(const DaemonRecord& recorded) {
  auto d = std::make_shared<Daemon>();
  DaemonRecord rec = recorded;
  std::string took_over;  // set when the standby replaced a daemon that died meanwhile

  // A hot standby of a manager that died without cleaning up ("pid:start_time:api_socket").
  if (auto leftover = store_.setting("standby:" + rec.id);
      leftover && leftover->has_value() && !(**leftover).empty()) {
    const std::string& text = **leftover;
    const size_t c1 = text.find(':');
    const size_t c2 = c1 == std::string::npos ? c1 : text.find(':', c1 + 1);
    pid_t pid = 0;
    uint64_t start = 0;
    std::string api;
    if (c1 != std::string::npos) {
      std::from_chars(text.data(), text.data() + c1, pid);
      std::from_chars(text.data() + c1 + 1, text.data() + (c2 == std::string::npos ? text.size() : c2),
                      start);
      if (c2 != std::string::npos) api = text.substr(c2 + 1);
    }
    auto p = pid > 0 ? env_.adopt(pid, start) : Result<DaemonProcess>(Error{ESRCH, "none"});
    const bool daemon_alive =
        rec.pid > 0 && env_.adopt(static_cast<pid_t>(rec.pid), rec.start_time);
    auto info = p && !daemon_alive && !api.empty() ? env_.api(api, rec.id)->info(std::chrono::seconds(2))
                                                   : Result<DaemonInfo>(Error{ESRCH, "not asked"});
    if (p && info && info->state == "RUNNING") {
      took_over = "hot standby pid " + std::to_string(pid) + " took over from pid " +
                  std::to_string(rec.pid) + ", which died while no manager was running";
      rec.pid = pid;
      rec.start_time = start;
      rec.api_socket = api;
      rec.failovers++;
      ::unlink(recorded.api_socket.c_str());
    } else if (p) {
      (void)p->kill_and_reap();
      spdlog::info("daemon {}: killed the hot standby {} a previous manager left behind", rec.id, pid);
    }
    (void)store_.set_setting("standby:" + rec.id, "");
  }
  d->rec = rec;
  d->api_seq = std::max(api_number(rec.api_socket), api_number(recorded.api_socket));
  std::lock_guard op(d->op_mu);
  if (!took_over.empty()) {
    record({.daemon_id = rec.id,
            .kind = EventKind::kFailover,
            .old_pid = recorded.pid,
            .new_pid = rec.pid,
            .ok = true,
            .detail = took_over});
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

  auto adopted = rec.pid > 0 ? env_.adopt(static_cast<pid_t>(rec.pid), rec.start_time)
                             : Result<DaemonProcess>(Error{ESRCH, "no process recorded"});
  if (adopted) {
    d->proc = std::move(*adopted);
    auto info = env_.api(rec.api_socket, rec.id)->info(std::chrono::seconds(2));
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
  auto st = restart(*d, env_.now(), rec.pid, "");
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
