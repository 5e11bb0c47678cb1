#include "support/bench_support.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

namespace ferry::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {
const char* g_program = "bench";
}  // namespace

void set_program_name(const char* name) {
  g_program = name;
}
const char* program_name() {
  return g_program;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
int64_t ns_of(std::chrono::nanoseconds d) {
  return d.count();
}
double to_ms(int64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a;
  std::string b;
  std::string c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ---- interruption ----------------------------------------------------------------------------

std::atomic<int> g_signal{0};

Status check_interrupt() {
  if (int sig = g_signal.load(); sig != 0)
    return Error{EINTR, "interrupted by signal " + std::to_string(sig)};
  return {};
}

Status sleep_ns(int64_t ns) {
  int64_t until = now_ns() + ns;
  while (true) {
    FERRY_TRY(check_interrupt());
    int64_t left = until - now_ns();
    if (left <= 0) return {};
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(left, 10 * kNsPerMs)));
  }
}

bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::microseconds every) {
  int64_t deadline = now_ns() + ns_of(timeout);
  while (true) {
    if (done()) return true;
    if (g_signal.load() != 0 || now_ns() > deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

SignalWatcher::SignalWatcher() {
  sigemptyset(&set_);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set_, sig);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  thread_ = std::thread([this] {
    while (true) {
      int sig = 0;
      if (sigwait(&set_, &sig) != 0) continue;
      if (sig == SIGUSR1) {
        if (done_.load()) return;
        continue;
      }
      int none = 0;
      if (g_signal.compare_exchange_strong(none, sig)) {
        std::fprintf(stderr, "%s: got signal %d: cleaning up\n", program_name(), sig);
      }
    }
  });
}

SignalWatcher::~SignalWatcher() {
  done_.store(true);
  pthread_kill(thread_.native_handle(), SIGUSR1);
  thread_.join();
}

// ---- child processes -------------------------------------------------------------------------

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
  const char* log_path;
  pid_t parent;
  int nice;
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
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != c.parent) ::_exit(126);
  if (c.nice != 0 && ::setpriority(PRIO_PROCESS, 0, c.nice) != 0) ::_exit(126);
  int out = ::open(c.log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (out >= 0) {
    ::dup2(out, 1);
    ::dup2(out, 2);
  }
  int in = ::open("/dev/null", O_RDONLY);
  if (in >= 0) ::dup2(in, 0);
  ::syscall(SYS_close_range, 3U, ~0U, 0U);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(c.argv[0], c.argv, environ);
  ::_exit(127);
}

}  // namespace

Result<Process> Process::spawn(const std::vector<std::string>& argv, const std::string& log, int nice) {
  // Everything is prepared before the child exists: it may only make system calls until exec.
  std::vector<std::vector<char>> storage;
  storage.reserve(argv.size());
  std::vector<char*> args;
  for (const auto& a : argv) {
    storage.emplace_back(a.begin(), a.end());
    storage.back().push_back('\0');
    args.push_back(storage.back().data());
  }
  args.push_back(nullptr);
  ExecChild child{args.data(), log.c_str(), ::getpid(), nice};
  // Not fork(): as ferry-snapshotter (posix_spawn), the child shares our memory until it execs,
  // and this process is large (the reader's completion ring): fork would copy its page tables
  // and the exec tear them down, 1-2 ms inside a crash round's measured blackout.
  constexpr size_t kStack = size_t{64} << 10;
  auto stack = std::make_unique<std::byte[]>(kStack);
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::clone(exec_child, stack.get() + kStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
  const int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return errno_error(err, "clone");
  ::setpgid(pid, pid);  // also here: whichever runs first
  return adopt(pid);
}

Result<Process> Process::fork_call(const std::function<int()>& body) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::_exit(body());
  }
  ::setpgid(pid, pid);
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

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout, bool interruptible) {
  int64_t deadline = now_ns() + ns_of(timeout);
  while (!reaped_) {
    if ((interruptible && g_signal.load() != 0) || now_ns() >= deadline) return std::nullopt;
    if (pidfd_) {
      pollfd p{pidfd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 10) > 0) try_reap();
    } else {
      if (!try_reap()) std::this_thread::sleep_for(100us);
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
  p.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)));  // -1 on old kernels: polled instead
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

std::string tail_of(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "  " + all[i] + "\n";
  return out;
}

Status run_command(const std::vector<std::string>& argv, const std::string& log,
                   std::chrono::milliseconds timeout) {
  FERRY_ASSIGN(Process p, Process::spawn(argv, log));
  auto st = p.wait_exit(timeout);
  FERRY_TRY(check_interrupt());
  if (!st) return Error{ETIMEDOUT, argv[0] + " did not finish in time"};
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
    return Error{EIO, argv[0] + " failed (" + describe_status(*st) + "):\n" + tail_of(log, 20)};
  }
  return {};
}

// ---- processes not ours to reap: /proc ------------------------------------------------------

std::string slurp(const std::string& path) {
  auto text = read_whole_file(path);
  return text.ok() ? std::move(*text) : std::string();
}

bool process_alive(pid_t pid) {
  return live_process_start_time(pid) != 0;
}

pid_t parent_of(pid_t pid) {
  auto st = read_proc_stat(pid);
  return st.ok() ? st->ppid : 0;
}

std::vector<std::string> cmdline_of(pid_t pid) {
  std::string raw = slurp("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  for (size_t pos = 0; pos < raw.size();) {
    size_t nul = raw.find('\0', pos);
    if (nul == std::string::npos) nul = raw.size();
    args.push_back(raw.substr(pos, nul - pos));
    pos = nul + 1;
  }
  return args;
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

uint64_t vm_rss_kib(pid_t pid) {
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)));
  if (!pidfd) return !process_alive(pid) || poll_until([&] { return !process_alive(pid); }, timeout);
  pollfd p{pidfd.get(), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

// ---- mounts and the temp dir -----------------------------------------------------------------

std::vector<pid_t> processes_naming(const std::string& dir) {
  std::vector<pid_t> out;
  pid_t self = ::getpid();
  for (pid_t pid : all_pids()) {
    if (pid == self) continue;
    for (const auto& a : cmdline_of(pid)) {
      if (a.find(dir + "/") != std::string::npos) {
        if (process_alive(pid)) out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

// ---- mounts and the temp dir -----------------------------------------------------------------

void unmount_quietly(const std::string& path) {
  for (int i = 0; i < 5 && !mounts_at_or_below(path).empty(); ++i) {
    if (::umount2(path.c_str(), 0) == 0) continue;
    if (i < 2) {
      std::this_thread::sleep_for(100ms);
      continue;
    }
    std::fprintf(stderr, "%s: '%s' is busy (%s); detaching it lazily\n", program_name(), path.c_str(),
                 std::strerror(errno));
    ::umount2(path.c_str(), MNT_DETACH);
  }
}

Result<std::unique_ptr<TempDir>> TempDir::create(const std::string& prefix, bool kill_leftovers) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return errno_error("mkdtemp '" + tmpl + "'");
  return std::unique_ptr<TempDir>(new TempDir(buf.data(), kill_leftovers));
}

TempDir::~TempDir() {
  if (kill_leftovers_) kill_leftovers();
  auto mounts = mounts_at_or_below(path_);
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) unmount_quietly(*it);
  if (!mounts_at_or_below(path_).empty()) {
    std::fprintf(stderr, "%s: something is still mounted below '%s'; leaving it\n", program_name(),
                 path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (ec)
    std::fprintf(stderr, "%s: cannot remove '%s': %s\n", program_name(), path_.c_str(), ec.message().c_str());
}

void TempDir::kill_leftovers() const {
  for (int round = 0; round < 10; ++round) {
    auto pids = processes_naming(path_);
    if (pids.empty()) return;
    for (pid_t pid : pids) {
      std::fprintf(stderr, "%s: killing leftover pid %d\n", program_name(), pid);
      ::kill(pid, SIGKILL);
    }
    for (pid_t pid : pids) {
      if (!wait_gone(pid, 10s)) std::fprintf(stderr, "%s: pid %d survived SIGKILL\n", program_name(), pid);
    }
  }
}

// ---- sample images ---------------------------------------------------------------------------

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string random_bytes(size_t size, uint64_t seed) {
  std::string data(size, '\0');
  for (size_t k = 0; k < size; k += 8) {
    uint64_t v = splitmix64(seed);
    std::memcpy(data.data() + k, &v, std::min<size_t>(8, size - k));
  }
  return data;
}

Status ImageTree::write(const std::string& rel, const std::string& data) {
  fs::path p = fs::path(root) / rel;
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  if (ec) return Error{ec.value(), "mkdir '" + p.parent_path().string() + "': " + ec.message()};
  std::ofstream out(p, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) return Error{EIO, "cannot write '" + p.string() + "'"};
  ++files;
  bytes += data.size();
  return {};
}

Status build_erofs_image(const std::string& tree, const std::string& meta, const std::string& blob,
                         const std::string& log) {
  std::string mkfs = find_in_path("mkfs.erofs");
  if (mkfs.empty()) return Error{ENOENT, "mkfs.erofs not found in PATH"};
  return run_command({mkfs, "--quiet", "--chunksize=65536", "--blobdev=" + blob, meta, tree}, log, 120s);
}

json localfs_blob_config(const std::string& blob) {
  return json{{"device", {{"backend", {{"type", "localfs"}, {"config", {{"blob_file", blob}}}}}}}};
}

// ---- the reader process ----------------------------------------------------------------------

void ReaderShared::fail(const std::string& what) {
  uint32_t i = nfailures.fetch_add(1);
  if (i < kMaxFailures) std::snprintf(failures[i], sizeof failures[i], "%s", what.c_str());
}

std::vector<std::string> ReaderShared::failure_list() const {
  std::vector<std::string> out;
  uint32_t n = std::min<uint32_t>(nfailures.load(), kMaxFailures);
  for (uint32_t i = 0; i < n; ++i) out.emplace_back(failures[i]);
  return out;
}

// ---- gaps between a reader's completions -----------------------------------------------------

GapWindow measure_gaps(const std::vector<int64_t>& ts, int64_t from, int64_t to, int64_t ref) {
  GapWindow w;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (ts[i] >= from && ts[i] <= to) ++w.ops;
    if (w.first_after == 0 && ts[i] > ref) w.first_after = ts[i];
    if (i > 0 && ts[i] >= from && ts[i - 1] <= to && ts[i] - ts[i - 1] > w.max_gap_ns) {
      w.max_gap_ns = ts[i] - ts[i - 1];
      w.gap_from = ts[i - 1];
      w.gap_to = ts[i];
    }
  }
  return w;
}

// ---- statistics ------------------------------------------------------------------------------

json summarize(std::vector<double> v) {
  if (v.empty()) return json{{"n", 0}};
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  double median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  auto rank = static_cast<size_t>(std::ceil(0.99 * static_cast<double>(n)));
  return json{{"n", n},
              {"min", v.front()},
              {"median", median},
              {"p99", v[std::max<size_t>(rank, 1) - 1]},
              {"max", v.back()}};
}

}  // namespace ferry::bench
