// What the process-layer tests share: processes that are always killed and reaped (by pid,
// also when an assertion fails), and a look at a process through /proc.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "manager/daemon_process.h"
#include "support/test_support.h"

namespace ferry::test {

// Owns a DaemonProcess and kills + reaps it on destruction.
class Spawned {
 public:
  Spawned() = default;
  explicit Spawned(manager::DaemonProcess p) : p_(std::move(p)) {}
  Spawned(Spawned&&) = default;
  Spawned& operator=(Spawned&&) = default;
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  ~Spawned() {
    if (p_.valid() && p_.pidfd() >= 0) (void)p_.kill_and_reap();
  }
  manager::DaemonProcess& operator*() { return p_; }
  manager::DaemonProcess* operator->() { return &p_; }

 private:
  manager::DaemonProcess p_;
};

// Spawns argv (fails the test if it cannot), logging to `log`.
inline Spawned spawn_or_fail(const std::vector<std::string>& argv, const std::string& log,
                             const std::map<std::string, std::string>& env = {}) {
  auto p = manager::DaemonProcess::spawn(argv, log, env);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  if (!p.ok()) return {};
  return Spawned(std::move(p).value());
}

// Field `n` (1-based, as in proc(5)) of /proc/<pid>/stat; "" if unreadable.
std::string stat_field(pid_t pid, int n);

// The fd numbers open in /proc/<pid>/fd.
std::vector<int> open_fds(pid_t pid);

// True while /proc/<pid> names a process started at `start_time` (not reaped, not reused).
bool process_exists(pid_t pid, uint64_t start_time);

}  // namespace ferry::test
