// DaemonProcess: one ferryd process as the manager sees it: a pid plus a pidfd. A value handle
// over a Process: the operating system's (spawn()/adopt() here, Env::system()), or one a unit
// test makes through its own Env (env.h).
//
// The pidfd is how death is detected (it becomes readable when the process exits; no false
// alarm from a slow or hung daemon) and how the process is signalled without racing pid reuse.
// It works for children (spawned here) and for daemons adopted after a manager restart (not
// our children: their exit status cannot be collected, only noticed).
//
// spawn() starts the binary with posix_spawn (no copy of the manager's memory) with: all fds but
// 0/1/2 closed (stdin /dev/null, stdout/stderr appended to `log_file`), a new session (a
// terminal's Ctrl-C or the manager's own death does not reach the daemon: daemons outlive the
// manager), default signal mask and dispositions, and the manager's environment plus
// `extra_env` (argv/envp are prepared before the child exists).
//
// Errors: spawn() fails with ENOENT/EACCES naming the binary when exec fails (posix_spawn reports
// it and reaps the child, so "no such binary" is an error, not a dead child).
//
// Thread-safety: one owner; is_alive()/pidfd() may be read from any thread.
// Ownership: the destructor does NOT kill the process (daemons outlive the manager by design);
// it only closes the pidfd. Call kill_and_reap() to end a process the manager gave up on.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace ferry::manager {

// One process, as DaemonProcess forwards to it (the meaning of each call is DaemonProcess's).
class Process {
 public:
  virtual ~Process() = default;
  [[nodiscard]] virtual pid_t pid() const = 0;
  [[nodiscard]] virtual int pidfd() const = 0;  // readable once the process exited
  [[nodiscard]] virtual uint64_t start_time() const = 0;
  [[nodiscard]] virtual bool is_child() const = 0;
  [[nodiscard]] virtual bool is_alive() const = 0;
  virtual Status signal(int sig) const = 0;
  virtual Result<std::string> wait_exit(std::chrono::milliseconds timeout) = 0;
  virtual Status kill_and_reap() = 0;
  virtual std::string reap() = 0;
  [[nodiscard]] virtual std::optional<int> exit_code() const = 0;
};

class DaemonProcess {
 public:
  DaemonProcess() = default;
  explicit DaemonProcess(std::unique_ptr<Process> process) : p_(std::move(process)) {}
  // Starts argv[0] (absolute path) with argv. Extra environment entries are added.
  // With `idle_priority` the process runs at nice 19 (set right after its exec, before it has
  // made a thread, so its start-up yields the CPU to the serving daemon and its readers but is
  // never starved), with FERRY_SERVING_NICE=<the manager's nice> in its environment:
  // for a successor started while the current daemon serves (hot standby, upgrade). ferryd
  // returns every thread to FERRY_SERVING_NICE when it starts serving.
  static Result<DaemonProcess> spawn(const std::vector<std::string>& argv, const std::string& log_file,
                                     const std::map<std::string, std::string>& extra_env = {},
                                     bool idle_priority = false);
  // Adopts a running process by pid (e.g. from a DaemonRecord after a manager restart).
  // Fails with ESRCH when it is gone, or when its start time (/proc/<pid>/stat field 22) is not
  // `expected_start_time` (the pid was reused by another process).
  static Result<DaemonProcess> adopt(pid_t pid, uint64_t expected_start_time);

  DaemonProcess(DaemonProcess&&) noexcept = default;
  DaemonProcess& operator=(DaemonProcess&&) noexcept = default;
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;
  ~DaemonProcess() = default;

  [[nodiscard]] pid_t pid() const { return p_ ? p_->pid() : -1; }
  [[nodiscard]] int pidfd() const { return p_ ? p_->pidfd() : -1; }  // readable once the process exited
  [[nodiscard]] uint64_t start_time() const { return p_ ? p_->start_time() : 0; }
  [[nodiscard]] bool is_child() const { return p_ && p_->is_child(); }
  [[nodiscard]] bool valid() const { return p_ && p_->pid() > 0; }
  // True until the process has exited (polls the pidfd, does not block).
  [[nodiscard]] bool is_alive() const { return p_ && p_->is_alive(); }
  // Sends `sig` through the pidfd (no pid-reuse race).
  Status signal(int sig) const;
  // Waits up to `timeout` for the exit (pidfd poll); for a child also reaps it. Returns a
  // description of how it ended ("exited with status 0", "killed by signal 9"; "exited" for
  // a non-child), or ETIMEDOUT.
  Result<std::string> wait_exit(std::chrono::milliseconds timeout);
  // SIGKILL, then waits for the exit and reaps a child. A child not yet reaped leads its own
  // process group (spawn() makes a new session), so the whole group is killed: whatever it
  // started (a wrapper script's daemon) goes too. Never fails silently: returns an error only
  // if the process could not be confirmed dead within 5 s.
  Status kill_and_reap() { return p_ ? p_->kill_and_reap() : ok_status(); }
  // For a child that has exited: reaps it and describes the exit; for others "exited".
  std::string reap() { return p_ ? p_->reap() : "exited"; }
  // The exit status of a reaped child that exited (not killed); nullopt otherwise or unknown.
  [[nodiscard]] std::optional<int> exit_code() const { return p_ ? p_->exit_code() : std::nullopt; }
  // A reaped child that exited with status 0 (false for anything else, or when unknown).
  [[nodiscard]] bool exited_with_success() const { return exit_code() == 0; }

 private:
  std::unique_ptr<Process> p_;
};

// /proc/<pid>/stat field 22 (start time in clock ticks since boot), or ESRCH.
Result<uint64_t> process_start_time(pid_t pid);

}  // namespace ferry::manager
