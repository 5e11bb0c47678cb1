// Child processes of tests and benchmarks, and a look at processes that are not our children.
//
// Process owns one child: started by spawn() (exec) or fork_call() (a function), killed (SIGKILL,
// by pid) and reaped on destruction unless already reaped, and killed by the kernel if this
// process dies first (PR_SET_PDEATHSIG). Exit times come from a pidfd, so they are as precise as a
// poll() wake-up. Not thread-safe: one thread owns a Process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace ferry::testkit {

struct SpawnOptions {
  std::string log;                         // stdout and stderr appended here; empty: inherited
  std::map<std::string, std::string> env;  // set in the child's environment (over ours)
  int nice = 0;                            // set in the child before exec
  bool own_group = false;                  // its own process group (a Ctrl-C reaches only us)
  // Close every fd beyond 2 in the child. Off by default: closing an fd of a FUSE mount sends a
  // FLUSH, which no daemon answers while the mount's daemon is dead or stalled, and the starter
  // (sharing the child's memory until exec) would wait for it. Only for a starter that holds no
  // file of a mount (a benchmark, whose reader is a process of its own).
  bool close_fds = false;
};

class Process {
 public:
  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { kill_and_reap(); }

  // Execs argv (argv[0] a path); stdin is /dev/null; fds without O_CLOEXEC are inherited unless
  // `close_fds`. The child shares our memory until it execs (no page tables copied: a large test
  // or benchmark process starts children as fast as a small one).
  static Result<Process> spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});
  // spawn() for tests, logging to `log` (empty: inherited) with `env` set: throws
  // std::runtime_error when the child cannot be started.
  static Process start(const std::vector<std::string>& argv, const std::string& log = {},
                       const std::map<std::string, std::string>& env = {});
  // Forks a child that runs `body` and exits with its result. Only while this process is
  // single-threaded: the child may then do anything a normal process does.
  static Result<Process> fork_call(const std::function<int()>& body, bool own_group = false);

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] int status() const { return status_; }        // the wait status, once reaped
  [[nodiscard]] int64_t exit_ns() const { return exit_ns_; }  // when it was seen gone (steady clock)
  [[nodiscard]] bool valid() const { return pid_ > 0 && !reaped_; }

  // True once the process has exited (it is then reaped).
  bool exited();
  [[nodiscard]] bool running() { return !exited(); }
  void signal(int sig) const;
  // Waits up to `timeout` for the exit, giving up early when `give_up()` turns true; the wait
  // status, or nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout, const std::function<bool()>& give_up = {});
  void kill_and_reap();

 private:
  static Process adopt(pid_t pid);
  bool try_reap();
  void mark_reaped(int st);

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool reaped_ = true;
  int status_ = 0;
  int64_t exit_ns_ = 0;
};

// "exit status N", "killed by signal N", ...
std::string describe_status(int st);
// Runs argv to completion (bounded), its output going to `log`; fails unless it exits 0, with the
// log's last lines in the message.
Status run_command(const std::vector<std::string>& argv, const std::string& log,
                   std::chrono::milliseconds timeout);
// Runs a shell command (sh -c, stderr joined to stdout); its exit status (0 = success), 128 when
// killed. Its output goes to `output` when given.
int run_shell(const std::string& command, std::string* output = nullptr);
// The executable `name` would run as, searched in $PATH ("" if not found).
std::string find_in_path(const std::string& name);
// A built binary (ferryd, ...) of this build tree: <build>/bin/<name>.
std::string binary_path(const std::string& name);

// ---- processes that are not ours to reap: pidfd and /proc ----------------------------------

// A pidfd for `pid` (pidfd_open(2)); an empty fd when the process is gone or the kernel has none.
UniqueFd pidfd_open(pid_t pid);
bool process_alive(pid_t pid);  // /proc/<pid> exists and is not a zombie
// Waits (deadline) until `pid` has exited: on a pidfd, else polling /proc.
bool wait_gone(pid_t pid, std::chrono::milliseconds timeout);
// SIGKILL by pid, then wait_gone(); true once it is gone (a pid <= 0 is none: true).
bool kill_and_wait_gone(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(10));
pid_t parent_of(pid_t pid);  // 0 when unknown
std::vector<std::string> cmdline_of(pid_t pid);
std::vector<pid_t> all_pids();
// Every live process but this one whose command line names a path below `dir`, or (when
// `env_marker` is given) whose environment holds the entry `env_marker` exactly.
std::vector<pid_t> processes_naming(const std::string& dir, const std::string& env_marker = {});
uint64_t vm_rss_kib(pid_t pid);  // VmRSS in KiB, 0 when the process is gone

// ---- files ------------------------------------------------------------------------------------

// The whole file, "" when it cannot be read (a /proc file of a process that exits meanwhile is
// "" or partial, never an exception).
std::string read_file(const std::string& path);
// The lines of `text`, without their newlines.
std::vector<std::string> lines_of(const std::string& text);
// The last `lines` lines of a file, each indented by two spaces (for error messages).
std::string tail_of(const std::string& path, size_t lines);

}  // namespace ferry::testkit
