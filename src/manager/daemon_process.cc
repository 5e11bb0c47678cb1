#include "manager/daemon_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common/pidfd.h"
#include "common/proc_files.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, not in every header

namespace ferry::manager {
namespace {

// A successor started while the daemon serves runs at the lowest priority until it takes over.
constexpr int kBackgroundNice = 19;

using Clock = std::chrono::steady_clock;

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    std::string d = "killed by signal " + std::to_string(WTERMSIG(status));
    if (WCOREDUMP(status)) d += " (core dumped)";
    return d;
  }
  return "ended with wait status " + std::to_string(status);
}

// Moves `fd` to a number >= 3, so that dup2() onto 0/1/2 in the child cannot clobber it (a
// manager started with a closed stdin would otherwise get fd 0 from open()).
Result<UniqueFd> above_stdio(UniqueFd fd, const std::string& what) {
  if (fd.get() > 2) return fd;
  UniqueFd moved(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (!moved) return errno_error(what);
  return moved;
}

// A posix_spawn object (attributes, file actions) destroyed on every path.
template <typename T, int (*Init)(T*), int (*Destroy)(T*)>
struct SpawnObject {
  T value{};
  SpawnObject() { Init(&value); }
  ~SpawnObject() { Destroy(&value); }
  SpawnObject(const SpawnObject&) = delete;
  SpawnObject& operator=(const SpawnObject&) = delete;
};
using SpawnAttr = SpawnObject<posix_spawnattr_t, ::posix_spawnattr_init, ::posix_spawnattr_destroy>;
using SpawnFileActions = SpawnObject<posix_spawn_file_actions_t, ::posix_spawn_file_actions_init,
                                     ::posix_spawn_file_actions_destroy>;

// Ends a child that spawn() will not hand out: SIGKILL, then reaped, so no zombie is left.
void kill_and_reap_child(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}


// A process of this machine, watched and signalled through its pidfd.
class OsProcess final : public Process {
 public:
  OsProcess(pid_t pid, UniqueFd pidfd, uint64_t start_time, bool child)
      : pid_(pid), pidfd_(std::move(pidfd)), start_time_(start_time), child_(child) {}

  [[nodiscard]] pid_t pid() const override { return pid_; }
  [[nodiscard]] int pidfd() const override { return pidfd_.get(); }
  [[nodiscard]] uint64_t start_time() const override { return start_time_; }
  [[nodiscard]] bool is_child() const override { return child_; }
  [[nodiscard]] bool is_alive() const override;
  Status signal(int sig) const override;
  Result<std::string> wait_exit(std::chrono::milliseconds timeout) override;
  Status kill_and_reap() override;
  std::string reap() override;
  [[nodiscard]] std::optional<int> exit_code() const override {
    if (!exit_status_ || !WIFEXITED(*exit_status_)) return std::nullopt;
    return WEXITSTATUS(*exit_status_);
  }

 private:
  // Records the outcome of waitpid() (`got`, with errno set when it is not pid_).
  std::string note_reaped(pid_t got, int status);

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  uint64_t start_time_ = 0;
  bool child_ = false;
  bool reaped_ = false;
  std::string exit_description_;    // set when a child is reaped; reap() repeats it
  std::optional<int> exit_status_;  // the wait status of a reaped child
};

}  // namespace

Result<uint64_t> process_start_time(pid_t pid) {
  FERRY_ASSIGN(ProcStat st, read_proc_stat(pid));
  return st.start_time;
}

Result<DaemonProcess> DaemonProcess::spawn(const std::vector<std::string>& argv, const std::string& log_file,
                                           const std::map<std::string, std::string>& extra_env,
                                           bool idle_priority) {
  if (argv.empty() || argv[0].empty() || argv[0].front() != '/') {
    return Error{EINVAL, "spawn: argv[0] must be an absolute path to the binary, got '" +
                             (argv.empty() ? std::string() : argv[0]) + "'"};
  }
  const std::string& binary = argv[0];

  // Everything the child needs is built here, before it exists.
  std::vector<std::string> env_strings;
  std::map<std::string, std::string> env_add = extra_env;
  if (idle_priority) {
    // The nice value the daemon returns to when it takes over: ours (an operator may run the
    // manager, and so its daemons, at a chosen priority).
    errno = 0;
    const int own_nice = ::getpriority(PRIO_PROCESS, 0);
    env_add.emplace("FERRY_SERVING_NICE", std::to_string(errno == 0 ? own_nice : 0));
  }
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    std::string key = entry.substr(0, entry.find('='));
    if (env_add.count(key) == 0) env_strings.push_back(std::move(entry));
  }
  for (const auto& [k, v] : env_add) env_strings.push_back(std::string(k).append("=").append(v));
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_strings = argv;
  std::vector<char*> args;
  args.reserve(arg_strings.size() + 1);
  for (auto& s : arg_strings) args.push_back(s.data());
  args.push_back(nullptr);

  // Private: a daemon's log names its images, their paths and (soon) registries.
  UniqueFd log(::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return errno_error("spawn " + binary + ": opening log file " + log_file);
  if (::fchmod(log.get(), 0600) != 0) return errno_error("spawn " + binary + ": chmod 0600 " + log_file);
  FERRY_ASSIGN(log, above_stdio(std::move(log), "spawn " + binary + ": moving log fd"));
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) return errno_error("spawn " + binary + ": opening /dev/null");
  FERRY_ASSIGN(devnull, above_stdio(std::move(devnull), "spawn " + binary + ": moving /dev/null fd"));

  // posix_spawn, not fork: glibc's shares our memory with the child until it execs (vfork
  // semantics), where fork copies the page tables of the whole manager and exec then tears the
  // copy down: medians 0.10 against 0.35 ms for a 15 MiB manager (bench/spawn_bench), inside a
  // cold failover's blackout. The child gets every signal at its default and none blocked, a
  // session of its own (so that killing its group ends what it started too), /dev/null and the
  // log as stdio, and no other fd.
  SpawnAttr attr;
  sigset_t all;
  sigset_t none;
  ::sigfillset(&all);
  ::sigemptyset(&none);
  ::posix_spawnattr_setsigdefault(&attr.value, &all);
  ::posix_spawnattr_setsigmask(&attr.value, &none);
  ::posix_spawnattr_setflags(&attr.value,
                             POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
  SpawnFileActions files;
  int rc = ::posix_spawn_file_actions_adddup2(&files.value, devnull.get(), 0);
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(&files.value, log.get(), 1);
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(&files.value, log.get(), 2);
  if (rc == 0) rc = ::posix_spawn_file_actions_addclosefrom_np(&files.value, 3);
  if (rc != 0) return errno_error(rc, "spawn " + binary + ": preparing its file actions");
  pid_t pid = -1;
  // An exec that fails is reported here, its child already reaped by posix_spawn.
  if (const int err = ::posix_spawn(&pid, args[0], &files.value, &attr.value, args.data(), envp.data());
      err != 0) {
    return errno_error(err, "spawn " + binary + ": cannot execute " + binary);
  }
  if (idle_priority && ::setpriority(PRIO_PROCESS, static_cast<id_t>(pid), kBackgroundNice) != 0) {
    // Right after the exec, before the new image has run far enough to make a thread (nice is
    // per thread, and its threads inherit it). Not SCHED_IDLE: an idle-policy process gets
    // ~0.3% of a CPU that readers keep busy, and a successor must still reach INIT within the
    // manager's deadline on a saturated host.
    Error e = errno_error("spawn " + binary + ": setting nice " + std::to_string(kBackgroundNice));
    kill_and_reap_child(pid);
    return e;
  }

  auto pidfd = open_pidfd(pid);
  if (!pidfd) {
    // Without a pidfd the process cannot be watched or signalled safely: do not keep it.
    kill_and_reap_child(pid);
    return std::move(pidfd).error().context("spawn " + binary);
  }
  // Start time is fixed when the process is created and kept across exec; the child is un-reaped, so it is
  // there.
  auto start = process_start_time(pid);
  if (!start.ok()) {
    kill_and_reap_child(pid);
    return std::move(start).error().context("spawn " + binary + ": reading its start time");
  }
  return DaemonProcess(std::make_unique<OsProcess>(pid, std::move(*pidfd), *start, true));
}

Result<DaemonProcess> DaemonProcess::adopt(pid_t pid, uint64_t expected_start_time) {
  std::string who = "adopting process " + std::to_string(pid);
  if (pid <= 0) return Error{ESRCH, who + ": not a valid pid"};
  auto opened = open_pidfd(pid);
  if (!opened) {
    if (opened.error().code == ESRCH) return Error{ESRCH, who + ": it is gone"};
    return std::move(opened).error().context(who);
  }
  UniqueFd pidfd = std::move(*opened);
  // Order matters: the pidfd pins the process we opened; /proc/<pid> names whatever has the
  // pid now. If the pidfd's process is still alive after we read /proc, they are the same.
  auto st = read_proc_stat(pid);
  if (!st.ok()) return std::move(st).error().context(who);
  pollfd pfd{pidfd.get(), POLLIN, 0};
  int r = ::poll(&pfd, 1, 0);
  if (r < 0) return errno_error(who + ": polling its pidfd");
  if (r > 0) return Error{ESRCH, who + ": it has exited"};
  if (st->start_time != expected_start_time) {
    return Error{ESRCH, who + ": pid was reused (start time " + std::to_string(st->start_time) +
                            ", expected " + std::to_string(expected_start_time) + ")"};
  }
  // Normally adopted daemons belong to a previous manager; if it is ours after all, we must
  // reap it or it would linger as a zombie.
  return DaemonProcess(std::make_unique<OsProcess>(pid, std::move(pidfd), st->start_time, st->ppid == ::getpid()));
}

Status DaemonProcess::signal(int sig) const {
  if (!p_) return Error{ESRCH, "signal " + std::to_string(sig) + ": no process"};
  return p_->signal(sig);
}

Result<std::string> DaemonProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (!valid()) return Error{EINVAL, "wait_exit: no process"};
  return p_->wait_exit(timeout);
}

bool OsProcess::is_alive() const {
  // Only the pidfd is consulted (it stays readable after the reap), so that other threads may
  // call this while the owner reaps.
  if (!pidfd_) return false;
  pollfd pfd{pidfd_.get(), POLLIN, 0};
  int r = 0;
  do {
    r = ::poll(&pfd, 1, 0);
  } while (r < 0 && errno == EINTR);
  // On a poll error we cannot tell; "alive" keeps the caller from acting on a false death.
  return r <= 0;
}

Status OsProcess::signal(int sig) const {
  if (!pidfd_ || reaped_)
    return Error{ESRCH,
                 "signal " + std::to_string(sig) + " to process " + std::to_string(pid_) + ": it has exited"};
  if (auto sent = pidfd_send_signal(pidfd_.get(), sig); !sent) {
    if (sent.error().code == ESRCH) {
      return Error{
          ESRCH, "signal " + std::to_string(sig) + " to process " + std::to_string(pid_) + ": it has exited"};
    }
    return std::move(sent).error().context("process " + std::to_string(pid_));
  }
  return ok_status();
}

Result<std::string> OsProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (reaped_ || !pidfd_) return reap();
  auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    // Round up so a sub-millisecond remainder still waits instead of spinning.
    int wait_ms = left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
    pollfd pfd{pidfd_.get(), POLLIN, 0};
    int r = ::poll(&pfd, 1, wait_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_error("waiting for process " + std::to_string(pid_));
    if (r > 0) break;
    if (Clock::now() >= deadline) {
      return Error{ETIMEDOUT, "process " + std::to_string(pid_) + " still running after " +
                                  std::to_string(timeout.count()) + " ms"};
    }
  }
  if (!child_) return std::string("exited");
  // The pidfd is readable once the child is a zombie, so this does not block for long.
  int status = 0;
  pid_t got = 0;
  do {
    got = ::waitpid(pid_, &status, 0);
  } while (got < 0 && errno == EINTR);
  return note_reaped(got, status);
}

Status OsProcess::kill_and_reap() {
  if (pid_ <= 0 || reaped_) return ok_status();
  // An unreaped child's pid (its group's id) cannot have been reused: the group is ours.
  if (child_) (void)::kill(-pid_, SIGKILL);
  Status st = signal(SIGKILL);
  if (!st.ok() && st.error().code != ESRCH) return st;
  auto r = wait_exit(std::chrono::seconds(5));
  if (!r.ok()) return std::move(r).error().context("SIGKILL did not end it");
  return ok_status();
}

std::string OsProcess::note_reaped(pid_t got, int status) {
  reaped_ = true;
  if (got != pid_) {
    exit_description_ = "exited (status not available: " + std::string(std::strerror(errno)) + ")";
  } else {
    exit_description_ = describe_status(status);
    exit_status_ = status;
  }
  return exit_description_;
}

std::string OsProcess::reap() {
  if (!child_) return "exited";
  if (reaped_) return exit_description_;
  int status = 0;
  pid_t got = 0;
  do {
    got = ::waitpid(pid_, &status, WNOHANG);
  } while (got < 0 && errno == EINTR);
  if (got == 0) return "still running";
  return note_reaped(got, status);
}

}  // namespace ferry::manager
