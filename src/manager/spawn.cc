// Starting ferryd processes for a daemon: command line, API socket naming, waiting for a state,
// the state fetch, and a complete fresh start (used by mount and by the restart policy).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "manager/daemon_client.h"
#include "manager/daemon_manager.h"
#include "manager/managed_daemon.h"
#include "manager/mount_ops.h"

namespace ferry::manager {

std::string DaemonManager::log_file(const std::string& id) const {
  return config_.log_dir() + "/" + id + ".log";
}

std::string DaemonManager::next_api_socket(Daemon& d) {
  // Fresh per process: a successor never has to bind a path a (possibly still exiting)
  // predecessor owns, and a client never reaches the wrong process through a stale path.
  return config_.daemons_dir() + "/" + d.rec.id + "/api-" + std::to_string(++d.api_seq) + ".sock";
}

std::vector<std::string> DaemonManager::ferryd_argv(const Daemon& d, const std::string& binary,
                                                    const std::string& api, bool upgrade) const {
  std::vector<std::string> argv = {binary, "fuse", "--mountpoint", d.rec.mountpoint};
  if (!upgrade && !d.rec.shared && !d.rec.mounts.empty()) {
    argv.insert(argv.end(), {"--bootstrap", d.rec.mounts.front().bootstrap, "--config",
                             config_.daemons_dir() + "/" + d.rec.id + "/config.json"});
  }
  argv.insert(argv.end(),
              {"--apisock", api, "--id", d.rec.id, "--supervisor", d.rec.supervisor_path, "--thread-num",
               std::to_string(d.rec.threads), "--failover-policy", d.rec.failover_policy, "--log-level",
               config_.log.level, "--log-file", log_file(d.rec.id)});
  if (upgrade) argv.emplace_back("--upgrade");
  return argv;
}

Result<std::string> DaemonManager::wait_for(DaemonProcess& proc, const std::string& api,
                                            const std::string& state, std::chrono::milliseconds deadline,
                                            bool urgent) const {
  auto client = env_.api(api, "");
  const auto until = env_.now() + deadline;
  auto pause = std::chrono::microseconds(200);
  std::string last = "no answer yet";
  for (;;) {
    if (!proc.is_alive()) {
      return Error{ECHILD, fmt::format("ferryd (pid {}) {} before reaching {} (last seen: {})", proc.pid(),
                                       proc.reap(), state, last)};
    }
    auto info = client->info(std::chrono::milliseconds(500));
    if (info) {
      if (info->state == state) return info->version;
      last = "state " + info->state;
    } else {
      last = info.error().message;
    }
    if (env_.now() >= until) {
      return Error{ETIMEDOUT, fmt::format("ferryd (pid {}) did not reach {} within {} ms (last seen: {})",
                                          proc.pid(), state, deadline.count(), last)};
    }
    env_.sleep_for(pause);
    // Measured on a 2-vCPU guest, cold failovers: a 400 us cap took the crash blackout's p99
    // from ~10 to ~7-9 ms next to a 5 ms cap (a blocking wait on inotify was slower still:
    // ~15-20 ms median, as the idle vCPUs are slow to wake).
    pause = std::min<std::chrono::microseconds>(
        pause * 2, urgent ? std::chrono::microseconds(400) : std::chrono::microseconds(5000));
  }
}

Result<DaemonManager::Started> DaemonManager::start_process(Daemon& d, const std::string& binary,
                                                            bool upgrade, const std::string& state,
                                                            std::chrono::milliseconds deadline, bool idle) {
  Started s;
  s.api = next_api_socket(d);
  ::unlink(s.api.c_str());
  const std::string log = log_file(d.rec.id);
  const uint64_t log_before = file_size(log);  // this process's lines start here
  d.refusal.clear();
  auto proc = env_.spawn(ferryd_argv(d, binary, s.api, upgrade), log, idle);
  if (!proc) return std::move(proc).error().context("starting '" + binary + "' for daemon " + d.rec.id);
  s.proc = std::move(*proc);
  auto version = wait_for(s.proc, s.api, state, deadline, /*urgent=*/!idle);
  if (!version) {
    if (s.proc.exit_code() == kFerrydExitRefused) {
      // ferryd refused its input (the image, the config): its own one-line reason says why.
      d.refusal = last_marked_line(log, log_before, "ferryd: error: ");
      if (d.refusal.empty()) d.refusal = "ferryd refused its input (see " + log + ")";
    }
    discard(s);
    std::string tail = log_tail(log);
    return Error{version.error().code, "daemon " + d.rec.id + ": " + version.error().message + "; see " +
                                           log + (tail.empty() ? "" : " (last lines: " + tail + ")")};
  }
  s.version = *version;
  return s;
}

void DaemonManager::discard(Started& s) {
  if (s.proc.valid() && !s.proc.is_alive()) {
    (void)s.proc.reap();
  } else if (s.proc.valid()) {
    if (auto st = s.proc.kill_and_reap(); !st) {
      spdlog::error("could not kill ferryd pid {}: {}", s.proc.pid(), st.error().message);
    }
  }
  s.proc = DaemonProcess();
  if (!s.api.empty()) ::unlink(s.api.c_str());
}

Status DaemonManager::fetch_state(Daemon& d, const std::string& api) {
  if (!d.supervisor) return Error{ENOTCONN, "daemon " + d.rec.id + " has no supervisor"};
  auto client = env_.api(api, d.rec.id);
  auto r =
      d.supervisor->receive([&] { return client->sendfd(std::chrono::seconds(5)); }, std::chrono::seconds(5));
  if (!r) return std::move(r).error().context("fetching the state of daemon " + d.rec.id);
  spdlog::debug("daemon {}: state saved ({} bytes from pid {})", d.rec.id, r->bytes, r->peer.pid);
  return {};
}

Status DaemonManager::watch(Daemon& d) {
  if (!watcher_ || !d.proc.valid()) return {};
  auto st = watcher_->watch(d.rec.id, d.proc.pidfd(), d.proc.pid());
  if (!st) spdlog::error("daemon {}: cannot watch pid {}: {}", d.rec.id, d.proc.pid(), st.error().message);
  return st;
}

Status DaemonManager::start_fresh(Daemon& d, const std::string& binary) {
  if (!d.rec.shared && !d.rec.mounts.empty()) {
    FERRY_TRY(write_file(config_.daemons_dir() + "/" + d.rec.id + "/config.json",
                         d.rec.mounts.front().config_json));
  }
  FERRY_ASSIGN(Started s, start_process(d, binary, false, "RUNNING", std::chrono::seconds(10)));
  auto rest = [&]() -> Status {
    if (d.rec.shared) {
      auto client = env_.api(s.api, d.rec.id);
      for (const auto& m : d.rec.mounts) {
        if (auto st = client->attach(m.daemon_path, m.bootstrap, m.config_json); !st) {
          return std::move(st).error().context("re-attaching '" + m.bootstrap + "'");
        }
        (void)umount_all(m.mountpoint);
        FERRY_TRY(bind_mount(config_.shared_mnt() + m.daemon_path, m.mountpoint));
      }
    }
    return fetch_state(d, s.api);
  }();
  if (!rest) {
    discard(s);
    return rest;
  }
  if (!d.rec.api_socket.empty() && d.rec.api_socket != s.api) ::unlink(d.rec.api_socket.c_str());
  d.proc = std::move(s.proc);
  d.rec.pid = d.proc.pid();
  d.rec.start_time = d.proc.start_time();
  d.rec.api_socket = s.api;
  d.rec.binary = binary;
  d.rec.version = s.version;
  d.dead = false;
  return {};
}

}  // namespace ferry::manager
