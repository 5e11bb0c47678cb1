#include "kit/process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/proc_files.h"
#include "kit/wait.h"

namespace ferry::testkit {
namespace fs = std::filesystem;

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      reaped_(std::exchange(other.reaped_, true)),
      status_(other.status_),
      exit_ns_(other.exit_ns_) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    reaped_ = std::exchange(other.reaped_, true);
    status_ = other.status_;
    exit_ns_ = other.exit_ns_;
  }
  return *this;
}

namespace {

struct ExecChild {
  char* const* argv;
  char* const* envp;
  const char* log_path;  // nullptr: inherit stdout and stderr
  pid_t parent;
  int nice;
  bool own_group;
  bool close_fds;
};

// The child of Process::spawn, on a stack of its own and in the parent's memory until execve:
// system calls only.
int exec_child(void* arg) {
  const auto& c = *static_cast<const ExecChild*>(arg);
  // Our handlers must not run in the child (it shares our memory): defaults first, then the
  // mask the parent blocked everything with is lifted.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // reserved ones fail
  }
  if (c.own_group) ::setpgid(0, 0);
  // Dies with its starter, even when that crashes and runs no destructor.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != c.parent) ::_exit(126);
  if (c.nice != 0 && ::setpriority(PRIO_PROCESS, 0, c.nice) != 0) ::_exit(126);
  if (c.log_path != nullptr) {
    int out = ::open(c.log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
  }
  int in = ::open("/dev/null", O_RDONLY);
  if (in >= 0) ::dup2(in, 0);
  if (c.close_fds) ::syscall(SYS_close_range, 3U, ~0U, 0U);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(c.argv[0], c.argv, c.envp);
  ::_exit(127);
}

// NUL-terminated copies that stay put while the child runs.
class CStrings {
 public:
  char* add(const std::string& s) {
    store_.emplace_back(s.begin(), s.end());
    store_.back().push_back('\0');
    return store_.back().data();
  }

 private:
  std::vector<std::vector<char>> store_;
};

}  // namespace

Result<Process> Process::spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) return Error{EINVAL, "spawn: empty argv"};
  // Everything is prepared before the child exists: it may only make system calls until exec.
  CStrings strings;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(strings.add(a));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (options.env.count(entry.substr(0, entry.find('='))) == 0) envp.push_back(*e);
  }
  for (const auto& [k, v] : options.env) envp.push_back(strings.add(k + "=" + v));
  envp.push_back(nullptr);
  ExecChild child{args.data(),      envp.data(),  options.log.empty() ? nullptr : options.log.c_str(),
                  ::getpid(),       options.nice, options.own_group,
                  options.close_fds};
  // Not fork(): the child shares our memory until it execs (as ferry-snapshotter's posix_spawn),
  // so a large process (a benchmark's completion rings) pays no page-table copy per start.
  constexpr size_t kStack = size_t{64} << 10;
  auto stack = std::make_unique<std::byte[]>(kStack);
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::clone(exec_child, stack.get() + kStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
  const int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return errno_error(err, "clone for " + argv[0]);
  if (options.own_group) ::setpgid(pid, pid);  // also here: whichever runs first
  return adopt(pid);
}

Process Process::start(const std::vector<std::string>& argv, const std::string& log,
                       const std::map<std::string, std::string>& env) {
  SpawnOptions options;
  options.log = log;
  options.env = env;
  auto p = spawn(argv, options);
  if (!p.ok()) throw std::runtime_error(p.error().message);
  return std::move(*p);
}

Result<Process> Process::fork_call(const std::function<int()>& body, bool own_group) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    if (own_group) ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::_exit(body());
  }
  if (own_group) ::setpgid(pid, pid);
  return adopt(pid);
}

bool Process::exited() {
  if (reaped_) return true;
  if (pidfd_) {
    pollfd p{pidfd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
  }
  return try_reap();
}

void Process::signal(int sig) const {
  if (!reaped_ && pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout,
                                      const std::function<bool()>& give_up) {
  const int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
  while (!reaped_) {
    if ((give_up && give_up()) || now_ns() >= deadline) return std::nullopt;
    if (pidfd_) {
      pollfd p{pidfd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 10) > 0) try_reap();
    } else if (!try_reap()) {
      std::this_thread::sleep_for(100us);
    }
  }
  return status_;
}

void Process::kill_and_reap() {
  if (reaped_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  mark_reaped(st);
}

Process Process::adopt(pid_t pid) {
  Process p;
  p.pid_ = pid;
  p.reaped_ = false;
  p.pidfd_ = pidfd_open(pid);  // empty on old kernels: polled instead
  return p;
}

bool Process::try_reap() {
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) != pid_) return false;
  mark_reaped(st);
  return true;
}

void Process::mark_reaped(int st) {
  exit_ns_ = now_ns();
  reaped_ = true;
  status_ = st;
  pidfd_.reset();
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exit status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "killed by signal " + std::to_string(WTERMSIG(st));
  return "wait status " + std::to_string(st);
}

Status run_command(const std::vector<std::string>& argv, const std::string& log,
                   std::chrono::milliseconds timeout) {
  SpawnOptions options;
  options.log = log;
  FERRY_ASSIGN(Process p, Process::spawn(argv, options));
  auto st = p.wait_exit(timeout);
  if (!st)
    return Error{ETIMEDOUT, argv[0] + " did not finish within " + std::to_string(timeout.count()) + " ms"};
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
    return Error{EIO, argv[0] + " failed (" + describe_status(*st) + "):\n" + tail_of(log, 20)};
  }
  return {};
}

int run_shell(const std::string& command, std::string* output) {
  std::string cmd = command + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  if (output != nullptr) *output = out;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string binary_path(const std::string& name) {
  return std::string(FERRY_BINARY_DIR) + "/bin/" + name;
}

// ---- processes that are not ours to reap -----------------------------------------------------

UniqueFd pidfd_open(pid_t pid) {
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)));
}

bool process_alive(pid_t pid) {
  return live_process_start_time(pid) != 0;
}

bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  UniqueFd pidfd = pidfd_open(pid);
  if (!pidfd) return wait_until([&] { return !process_alive(pid); }, timeout);
  pollfd p{pidfd.get(), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

bool kill_and_wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  if (pid <= 0) return true;
  ::kill(pid, SIGKILL);
  return wait_gone(pid, timeout);
}

pid_t parent_of(pid_t pid) {
  auto st = read_proc_stat(pid);
  return st.ok() ? st->ppid : 0;
}

namespace {
// The NUL-separated entries of a /proc file (cmdline, environ).
std::vector<std::string> nul_list(const std::string& raw) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < raw.size();) {
    size_t nul = raw.find('\0', pos);
    if (nul == std::string::npos) nul = raw.size();
    out.push_back(raw.substr(pos, nul - pos));
    pos = nul + 1;
  }
  return out;
}
}  // namespace

std::vector<std::string> cmdline_of(pid_t pid) {
  return nul_list(read_file("/proc/" + std::to_string(pid) + "/cmdline"));
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    char* end = nullptr;
    long pid = std::strtol(name.c_str(), &end, 10);
    if (end != name.c_str() && *end == '\0' && pid > 0) out.push_back(static_cast<pid_t>(pid));
  }
  return out;
}

std::vector<pid_t> processes_naming(const std::string& dir, const std::string& env_marker) {
  std::vector<pid_t> out;
  const pid_t self = ::getpid();
  for (pid_t pid : all_pids()) {
    if (pid == self) continue;
    bool ours = false;
    for (const auto& a : cmdline_of(pid)) ours = ours || a.find(dir + "/") != std::string::npos;
    if (!ours && !env_marker.empty()) {
      for (const auto& e : nul_list(read_file("/proc/" + std::to_string(pid) + "/environ")))
        ours = ours || e == env_marker;
    }
    if (ours && process_alive(pid)) out.push_back(pid);
  }
  return out;
}

uint64_t vm_rss_kib(pid_t pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

// ---- files ------------------------------------------------------------------------------------

std::string read_file(const std::string& path) {
  auto text = read_whole_file(path);
  return text.ok() ? std::move(*text) : std::string();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string tail_of(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "  " + all[i] + "\n";
  return out;
}

}  // namespace ferry::testkit
