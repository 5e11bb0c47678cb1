// Hot upgrade: every daemon in turn hands its live FUSE connection to a process of another
// binary. The new process starts serving BEFORE the old one is asked to exit, so a planned
// hand-over has no gap; a failure before the old one exited leaves the old one serving, a
// death of the new one after it exited rolls back to the old binary with the same state.
#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "manager/daemon_client.h"
#include "manager/daemon_manager.h"
#include "manager/managed_daemon.h"
#include "manager/mount_ops.h"

namespace ferry::manager {
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

Result<std::string> DaemonManager::check_binary(const UpgradeRequest& request) {
  const std::string& path = request.nydusd_path;
  FERRY_TRY(check_abs_file(path, "nydusd_path"));
  if (::access(path.c_str(), X_OK) != 0) return Error{EINVAL, "nydusd_path '" + path + "' is not executable"};
  std::string out_file = config_.daemons_dir() + "/version-check-XXXXXX";
  UniqueFd out_fd(::mkstemp(out_file.data()));
  if (!out_fd) return errno_error("creating a temporary file in '" + config_.daemons_dir() + "'");
  struct Unlink {
    std::string path;
    ~Unlink() { ::unlink(path.c_str()); }
  } unlink_later{out_file};
  // At nice 19: loading the binary must not take CPU from the daemons and their readers.
  auto proc = env_.spawn({path, "--version"}, out_file, /*idle_priority=*/true);
  if (!proc) return Error{EINVAL, "nydusd_path '" + path + "' cannot be started: " + proc.error().message};
  auto how = proc->wait_exit(std::chrono::seconds(5));
  if (!how) {
    (void)proc->kill_and_reap();
    return Error{EINVAL, "nydusd_path '" + path + "' did not answer --version within 5 s"};
  }
  std::ifstream in(out_file);
  std::stringstream text;
  text << in.rdbuf();
  const std::string all_output = trim(text.str());
  // One line is enough to tell a person what the binary said.
  const std::string output = all_output.substr(0, all_output.find('\n'));
  if (!proc->exited_with_success()) {
    return Error{EINVAL, "'" + path + " --version' " + *how + (output.empty() ? "" : ": " + output)};
  }
  if (!request.version.empty() && all_output.find(request.version) == std::string::npos) {
    return Error{EINVAL, "'" + path + " --version' does not report version " + request.version +
                             " (it says: " + output + ")"};
  }
  return output;
}

Result<UpgradeAnswer> DaemonManager::upgrade(const UpgradeRequest& request) {
  std::lock_guard serial(upgrade_mu_);
  FERRY_ASSIGN(std::string version_text, check_binary(request));
  UpgradeAnswer answer;
  answer.nydusd_path = request.nydusd_path;
  std::vector<std::shared_ptr<Daemon>> all;
  {
    std::lock_guard lk(mu_);
    if (stopping_) return Error{EAGAIN, "the manager is shutting down"};
    for (auto& [id, d] : daemons_) all.push_back(d);
  }
  for (auto& d : all) {
    std::lock_guard op(d->op_mu);
    if (d->removed || d->dead || !d->proc.valid()) continue;
    auto step = upgrade_one(*d, request.nydusd_path);
    if (!step) {
      ensure_standby(*d);  // the old daemon serves on: it gets its standby back
      Error e = std::move(step).error();
      e = internal(std::move(e));
      std::string done;
      for (const auto& s : answer.daemons) done += (done.empty() ? "" : ", ") + s.id;
      return e.context("upgrading daemon " + d->rec.id +
                       (done.empty() ? std::string() : " (already upgraded: " + done + ")"));
    }
    answer.daemons.push_back(*step);
    answer.version = d->rec.version;
  }
  if (auto st = store_.set_setting("nydusd_path", request.nydusd_path); !st) {
    return std::move(st).error().context("remembering the new nydusd_path");
  }
  {
    std::lock_guard lk(mu_);
    binary_ = request.nydusd_path;
  }
  if (answer.version.empty()) answer.version = request.version.empty() ? version_text : request.version;
  spdlog::info("upgraded {} daemon(s) to '{}'", answer.daemons.size(), request.nydusd_path);
  return answer;
}

Result<UpgradeStep> DaemonManager::upgrade_one(Daemon& d, const std::string& binary) {
  const auto t0 = env_.now();
  const int64_t old_pid = d.proc.pid();
  const std::string old_binary = d.rec.binary;
  const std::string old_api = d.rec.api_socket;
  auto fail = [&](Error e) -> Error {
    record({.daemon_id = d.rec.id,
            .kind = EventKind::kFailure,
            .old_pid = old_pid,
            .ok = false,
            .detail = "upgrade to '" + binary + "' failed, pid " + std::to_string(old_pid) +
                      " keeps serving: " + e.message});
    return e;
  };
  // The standby holds the old binary and would start by itself when the old daemon exits.
  kill_standby(d);
  // The new process first, the state after it: a process start disturbs readers on a loaded
  // host (exec, loading, page faults: about a millisecond of lost CPU for them), and this way
  // that happens before the hand-over rather than inside it. The state is then also as fresh
  // as it can be (the held one may predate the last change of the daemon).
  auto started = start_process(d, binary, true, "INIT", std::chrono::seconds(5), /*idle=*/true);
  if (!started) return fail(std::move(started).error());
  Started s = std::move(*started);
  const int64_t new_pid = s.proc.pid();
  if (auto st = fetch_state(d, old_api); !st) {
    discard(s);
    return fail(std::move(st).error());
  }
  auto client = env_.api(s.api, d.rec.id);
  auto handover = [&]() -> Status {
    auto sent =
        d.supervisor->send([&] { return client->takeover(std::chrono::seconds(5)); }, std::chrono::seconds(5));
    if (!sent) return std::move(sent).error().context("handing the state to pid " + std::to_string(new_pid));
    // A takeover answered with success has left the daemon READY (ferryd answers it only once
    // done), and `start` refuses any other state: no poll for READY in between, as in a
    // failover. Until the start the old daemon serves alone next to a busy successor.
    return client->start(std::chrono::seconds(5));
  }();
  if (!handover) {
    discard(s);
    return fail(std::move(handover).error());
  }
  // Both processes serve the same connection now. The old one leaves: unwatch it first so its
  // exit is not taken for a crash.
  if (watcher_) watcher_->unwatch(d.rec.id);
  if (auto st = env_.api(old_api, d.rec.id)->exit(std::chrono::seconds(5)); !st) {
    spdlog::warn("daemon {}: asking pid {} to exit: {}", d.rec.id, old_pid, st.error().message);
  }
  std::string how;
  if (auto exited = d.proc.wait_exit(std::chrono::seconds(5)); exited) {
    how = *exited;
  } else {
    how = "did not exit within 5 s; killed";
    (void)d.proc.kill_and_reap();
  }
  ::unlink(old_api.c_str());
  d.proc = DaemonProcess();

  if (!s.proc.is_alive()) {
    // The new process died after the old one left: the old binary takes the held state again.
    std::string died = s.proc.reap();
    discard(s);
    record({.daemon_id = d.rec.id,
            .kind = EventKind::kFailure,
            .old_pid = old_pid,
            .new_pid = new_pid,
            .ok = false,
            .detail = "upgrade to '" + binary + "': new pid " + std::to_string(new_pid) + " " + died +
                      " after the old one exited; rolling back to '" + old_binary + "'"});
    publish(d, "RECOVERING");
    auto st = failover(d, env_.now(), old_binary, EventKind::kRollback, new_pid);
    if (!st) {
      auto rs = restart(d, env_.now(), new_pid, "rollback failed (" + st.error().message + ")");
      if (!rs) {
        d.dead = true;
        d.rec.pid = 0;
        if (d.supervisor) d.supervisor->clear();
        (void)persist(d);
        publish(d, "DEAD");
        record({.daemon_id = d.rec.id,
                .kind = EventKind::kFailure,
                .old_pid = new_pid,
                .ok = false,
                .detail = "rollback and restart failed, daemon is DEAD: " + rs.error().message});
        return Error{EIO,
                     "new pid " + std::to_string(new_pid) + " " + died +
                         " after the old daemon exited; rollback and restart failed: " + rs.error().message};
      }
    }
    publish(d, "");
    ensure_standby(d);
    return Error{EIO, "new pid " + std::to_string(new_pid) + " " + died +
                          " after the old daemon exited; rolled back to '" + old_binary + "'" +
                          (st ? "" : " failed, restarted instead")};
  }

  d.proc = std::move(s.proc);
  d.rec.pid = d.proc.pid();
  d.rec.start_time = d.proc.start_time();
  d.rec.api_socket = s.api;
  d.rec.binary = binary;
  if (auto info = client->info(std::chrono::seconds(1)); info) d.rec.version = info->version;
  d.rec.upgrades++;
  (void)watch(d);
  (void)persist(d);
  const double duration = ms_since(env_, t0);
  if (auto st = fetch_state(d, d.rec.api_socket); !st) {
    record({.daemon_id = d.rec.id,
            .kind = EventKind::kFailure,
            .new_pid = d.proc.pid(),
            .ok = false,
            .detail = "saving the state after the upgrade: " + st.error().message});
  }
  record({.daemon_id = d.rec.id,
          .kind = EventKind::kUpgrade,
          .old_pid = old_pid,
          .new_pid = d.proc.pid(),
          .duration_ms = duration,
          .ok = true,
          .detail =
              "'" + old_binary + "' -> '" + binary + "' (version " + d.rec.version + "); old daemon " + how});
  publish(d, "");
  kill_standby(d);
  ensure_standby(d);
  return UpgradeStep{d.rec.id, old_pid, d.rec.pid, duration};
}

}  // namespace ferry::manager
