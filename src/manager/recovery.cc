// What happens when a daemon dies: the death notice travels from the watcher thread to the
// recovery thread, which applies the daemon's policy (none / restart / failover) under the
// daemon's mutex. Also the hot standby's life.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <optional>
#include <utility>

#include "manager/daemon_client.h"
#include "manager/daemon_manager.h"
#include "manager/managed_daemon.h"
#include "manager/mount_ops.h"

namespace ferry::manager {
namespace {

std::chrono::milliseconds retry_delay(unsigned attempt) {
  static constexpr std::array<int, 4> kDelays = {20, 200, 1000, 2000};
  return std::chrono::milliseconds(kDelays[std::min<size_t>(attempt, kDelays.size() - 1)]);
}

}  // namespace

void DaemonManager::on_death(const std::string& key, int pid) {
  // The watcher thread only queues: a recovery may take seconds and must not delay the notice
  // of another daemon's death.
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    deaths_.push_back({key, pid, env_.now()});
  }
  cv_.notify_all();
}

void DaemonManager::recovery_loop() {
  for (;;) {
    Death death;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !deaths_.empty(); });
      if (stopping_) return;
      death = std::move(deaths_.front());
      deaths_.pop_front();
    }
    handle_death(death);
  }
}

bool DaemonManager::backoff(std::chrono::milliseconds delay) {
  std::unique_lock lk(mu_);
  return !env_.wait_unless(lk, cv_, delay, [&] { return stopping_; });
}

void DaemonManager::handle_death(const Death& death) {
  const bool standby = death.key.ends_with(kStandbySuffix);
  const std::string id =
      standby ? death.key.substr(0, death.key.size() - std::string_view(kStandbySuffix).size()) : death.key;
  auto d = find(id);
  if (!d) return;
  std::lock_guard op(d->op_mu);
  if (d->removed) return;
  if (standby) {
    if (!d->standby.valid() || d->standby.pid() != death.pid) return;
    const int64_t pid = d->standby.pid();
    std::string how = d->standby.reap();
    d->standby = DaemonProcess();
    d->standby_pid = 0;
    ::unlink(d->standby_api.c_str());
    (void)store_.set_setting("standby:" + id, "");
    ++d->standby_failures;
    record(
        {.daemon_id = id,
         .kind = EventKind::kFailure,
         .old_pid = pid,
         .ok = false,
         .detail = "hot standby " + how + "; " +
                   (d->standby_failures <= config_.daemon.recover_attempts ? "starting another"
                                                                           : "giving up on a hot standby")});
    if (d->standby_failures <= config_.daemon.recover_attempts &&
        backoff(retry_delay(d->standby_failures - 1))) {
      ensure_standby(*d);
    }
    return;
  }
  // A notice about a process that is no longer the daemon's (an old daemon leaving after an
  // upgrade, a successor that already replaced it) is not a death of the daemon.
  if (!d->proc.valid() || d->proc.pid() != death.pid) return;
  recover(*d, death, d->proc.reap());
}

void DaemonManager::recover(Daemon& d, const Death& death, const std::string& how) {
  const int64_t old_pid = d.proc.pid();
  // The death is written to the store after a failover, not before: a database write does
  // not belong in the blackout. Its time is the notice's.
  std::optional<EventRecord> death_event =
      EventRecord{.time_ms = unix_now_ms(),
                  .daemon_id = d.rec.id,
                  .kind = EventKind::kDeath,
                  .old_pid = old_pid,
                  .ok = true,
                  .detail = "ferryd " + how + " (policy " + std::string(to_string(d.rec.policy)) + ")"};
  if (d.rec.policy != RecoverPolicy::kFailover) record(*std::exchange(death_event, std::nullopt));
  publish(d, "RECOVERING");
  d.proc = DaemonProcess();
  ::unlink(d.rec.api_socket.c_str());

  std::string why;
  if (d.rec.policy == RecoverPolicy::kNone) {
    // Closing the held fd aborts the FUSE connection: readers get ENOTCONN at once instead of
    // waiting forever for a daemon that will never come.
    kill_standby(d);
    if (d.supervisor) d.supervisor->clear();
    d.dead = true;
    d.rec.pid = 0;
    (void)persist(d);
    publish(d, "DEAD");
    return;
  }
  if (d.rec.policy == RecoverPolicy::kFailover) {
    auto st = failover(d, death.when, d.rec.binary, EventKind::kFailover, old_pid, &death_event);
    if (st) {
      publish(d, "");
      ensure_standby(d);
      return;
    }
    if (death_event) record(*std::exchange(death_event, std::nullopt));
    why = "failover failed (" + st.error().message + "); falling back to restart";
  }
  auto st = restart(d, death.when, old_pid, why);
  if (st) {
    publish(d, "");
    ensure_standby(d);
    return;
  }
  kill_standby(d);
  if (d.supervisor) d.supervisor->clear();
  d.dead = true;
  d.rec.pid = 0;
  (void)persist(d);
  record(
      {.daemon_id = d.rec.id,
       .kind = EventKind::kFailure,
       .old_pid = old_pid,
       .ok = false,
       .detail = "recovery gave up, daemon is DEAD: " + st.error().message + "; see " + log_file(d.rec.id)});
  publish(d, "DEAD");
}

Status DaemonManager::failover(Daemon& d, Clock::time_point since, const std::string& binary, EventKind kind,
                               int64_t old_pid, std::optional<EventRecord>* before) {
  auto flush_before = [&] {
    if (before != nullptr && before->has_value()) record(*std::exchange(*before, std::nullopt));
  };
  const unsigned attempts = std::max(1U, config_.daemon.recover_attempts);
  const std::string what = kind == EventKind::kRollback ? "rollback" : "failover";
  Error last{EIO, what + " was not attempted"};
  for (unsigned attempt = 1; attempt <= attempts; ++attempt) {
    if (attempt > 1 && !backoff(retry_delay(attempt - 2)))
      return Error{ECANCELED, "the manager is shutting down"};
    Started s;
    std::string source = "cold successor";
    size_t state_bytes = 0;
    if (kind == EventKind::kFailover && d.standby.valid()) {
      if (watcher_) watcher_->unwatch(d.rec.id + kStandbySuffix);
      // The standby starts by itself when it sees the death: there is nothing to hand it.
      if (d.standby.is_alive() && d.rec.binary == binary) {
        s.proc = std::move(d.standby);
        s.api = d.standby_api;
        s.version = d.standby_version;
        d.standby = DaemonProcess();
        d.standby_pid = 0;
        source = "hot standby";
        state_bytes = d.standby_state_bytes;
        d.standby_failures = 0;
      } else {
        kill_standby(d);
      }
    }
    auto step = [&]() -> Status {
      auto client = env_.api(s.api, d.rec.id);
      if (source == "hot standby") {
        // It serves already, or is about to: confirm, bounded.
        if (auto r = wait_for(s.proc, s.api, "RUNNING", std::chrono::seconds(2)); !r) {
          return std::move(r).error().context("the hot standby did not take over");
        }
      } else {
        if (!s.proc.valid()) {
          FERRY_ASSIGN(s, start_process(d, binary, true, "INIT", std::chrono::seconds(5)));
          client = env_.api(s.api, d.rec.id);
        }
        auto sent = d.supervisor
                        ? d.supervisor->send([&] { return client->takeover(std::chrono::seconds(5)); },
                                             std::chrono::seconds(5))
                        : Result<ipc::Supervisor::Exchange>(Error{ENOTCONN, "no supervisor"});
        if (!sent)
          return std::move(sent).error().context("handing the state to pid " + std::to_string(s.proc.pid()));
        state_bytes = sent->bytes;
        if (auto st = client->start(std::chrono::seconds(5)); !st) {
          return std::move(st).error().context("starting pid " + std::to_string(s.proc.pid()));
        }
      }
      const double duration = ms_since(env_, since);
      d.proc = std::move(s.proc);
      d.rec.pid = d.proc.pid();
      d.rec.start_time = d.proc.start_time();
      d.rec.api_socket = s.api;
      d.rec.binary = binary;
      if (!s.version.empty()) d.rec.version = s.version;
      if (kind == EventKind::kFailover) d.rec.failovers++;
      d.dead = false;
      (void)watch(d);
      if (source == "hot standby") (void)store_.set_setting("standby:" + d.rec.id, "");
      flush_before();
      (void)persist(d);
      record({.daemon_id = d.rec.id,
              .kind = kind,
              .old_pid = old_pid,
              .new_pid = d.proc.pid(),
              .duration_ms = duration,
              .ok = true,
              .detail = "took over a state of " + std::to_string(state_bytes) + " bytes (" + source +
                        ", attempt " + std::to_string(attempt) + ", failover policy " +
                        d.rec.failover_policy + ")"});
      // Outside the blackout: a fresh state for the next crash.
      if (auto st = fetch_state(d, d.rec.api_socket); !st) {
        record({.daemon_id = d.rec.id,
                .kind = EventKind::kFailure,
                .new_pid = d.proc.pid(),
                .ok = false,
                .detail = "saving the state after the " + what + ": " + st.error().message});
      }
      return {};
    }();
    if (step) return {};
    discard(s);
    last = std::move(step).error();
    flush_before();
    record({.daemon_id = d.rec.id,
            .kind = EventKind::kFailure,
            .old_pid = old_pid,
            .ok = false,
            .detail = what + " attempt " + std::to_string(attempt) + "/" + std::to_string(attempts) +
                      " failed: " + last.message});
  }
  return last;
}

Status DaemonManager::restart(Daemon& d, Clock::time_point since, int64_t old_pid, const std::string& why) {
  kill_standby(d);
  // The dead daemon's FUSE connection cannot be saved: drop the held fd (aborting it) and
  // detach its mount(s) so the fresh daemon mounts anew.
  if (d.supervisor) d.supervisor->clear();
  const unsigned attempts = std::max(1U, config_.daemon.recover_attempts);
  Error last{EIO, "restart was not attempted"};
  for (unsigned attempt = 1; attempt <= attempts; ++attempt) {
    if (attempt > 1 && !backoff(retry_delay(attempt - 2)))
      return Error{ECANCELED, "the manager is shutting down"};
    if (d.rec.shared) {
      for (const auto& m : d.rec.mounts) (void)umount_all(m.mountpoint);
    }
    (void)umount_all(d.rec.mountpoint);
    auto st = start_fresh(d, d.rec.binary);
    if (st) {
      d.rec.restarts++;
      (void)watch(d);
      (void)persist(d);
      record({.daemon_id = d.rec.id,
              .kind = EventKind::kRestart,
              .old_pid = old_pid,
              .new_pid = d.proc.pid(),
              .duration_ms = ms_since(env_, since),
              .ok = true,
              .detail = (why.empty() ? std::string() : why + "; ") + "fresh daemon mounted " +
                        std::to_string(d.rec.mounts.size()) +
                        " image(s) again; files open in the old mount fail with ENOTCONN/EIO"});
      return {};
    }
    last = std::move(st).error();
    record({.daemon_id = d.rec.id,
            .kind = EventKind::kFailure,
            .old_pid = old_pid,
            .ok = false,
            .detail = "restart attempt " + std::to_string(attempt) + "/" + std::to_string(attempts) +
                      " failed: " + last.message});
  }
  return last;
}

void DaemonManager::ensure_standby(Daemon& d) {
  if (d.rec.policy != RecoverPolicy::kFailover || !config_.daemon.hot_standby) return;
  if (d.removed || d.dead || !d.proc.valid() || d.standby.valid()) return;
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
  }
  auto s = start_process(d, d.rec.binary, true, "INIT", std::chrono::seconds(5), /*idle=*/true);
  if (!s) {
    ++d.standby_failures;
    record({.daemon_id = d.rec.id,
            .kind = EventKind::kFailure,
            .ok = false,
            .detail = "starting a hot standby: " + s.error().message});
    return;
  }
  // It takes the held state over now and waits READY: at a death it only has to start.
  auto client = env_.api(s->api, d.rec.id);
  auto armed = [&]() -> Result<size_t> {
    if (!d.supervisor) return Error{ENOTCONN, "no supervisor"};
    FERRY_ASSIGN(auto sent, d.supervisor->send([&] { return client->takeover(std::chrono::seconds(5)); },
                                               std::chrono::seconds(5)));
    FERRY_TRY(client->start_when_predecessor_exits(std::chrono::seconds(5)));
    return sent.bytes;
  }();
  if (!armed) {
    ++d.standby_failures;
    discard(*s);
    record({.daemon_id = d.rec.id,
            .kind = EventKind::kFailure,
            .ok = false,
            .detail = "preparing a hot standby: " + armed.error().message});
    return;
  }
  d.standby = std::move(s->proc);
  d.standby_pid = d.standby.pid();
  d.standby_api = s->api;
  d.standby_version = s->version;
  d.standby_state_bytes = *armed;
  // "pid:start_time:api_socket": a manager restarted after a crash finds it by this.
  (void)store_.set_setting(
      "standby:" + d.rec.id,
      std::to_string(d.standby.pid()) + ":" + std::to_string(d.standby.start_time()) + ":" + d.standby_api);
  if (watcher_) {
    auto st = watcher_->watch(d.rec.id + kStandbySuffix, d.standby.pidfd(), d.standby.pid());
    if (!st) spdlog::warn("daemon {}: cannot watch the hot standby: {}", d.rec.id, st.error().message);
  }
  spdlog::info("daemon {}: hot standby pid {} holds the state ({} bytes), waiting for pid {} to exit",
               d.rec.id, d.standby.pid(), d.standby_state_bytes, d.proc.pid());
}

void DaemonManager::kill_standby(Daemon& d) {
  if (!d.standby.valid()) return;
  if (watcher_) watcher_->unwatch(d.rec.id + kStandbySuffix);
  if (d.standby.is_alive()) {
    if (auto st = d.standby.kill_and_reap(); !st) {
      spdlog::error("daemon {}: could not kill hot standby {}: {}", d.rec.id, d.standby.pid(),
                    st.error().message);
    }
  } else {
    (void)d.standby.reap();
  }
  d.standby = DaemonProcess();
  d.standby_pid = 0;
  ::unlink(d.standby_api.c_str());
  (void)store_.set_setting("standby:" + d.rec.id, "");
}

}  // namespace ferry::manager
