#include "support/test_support.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/proc_files.h"

namespace ferry::test {
namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  auto text = read_whole_file(path);
  return text.ok() ? std::move(*text) : std::string();
}

namespace {}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != 0 ? base : "/tmp") + "/ferry-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  auto mounts = mounts_at_or_below(path_);
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) unmount_quietly(*it);
  // FERRY_KEEP_FAILED=1 keeps a failed test's directory (daemon logs, states) for a post-mortem.
  const char* keep = std::getenv("FERRY_KEEP_FAILED");
  if (keep != nullptr && std::string(keep) == "1" && ::testing::Test::HasFailure()) {
    std::fprintf(stderr, "kept %s (FERRY_KEEP_FAILED=1)\n", path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

Child Child::spawn(const std::vector<std::string>& argv, const std::string& log_path,
                   const std::map<std::string, std::string>& extra_env) {
  // Everything the child needs is prepared before fork(): between fork() and exec() a child of
  // a multi-threaded process may only make async-signal-safe calls (no malloc, no setenv).
  std::vector<std::vector<char>> storage;
  auto keep = [&storage](const std::string& s) {
    storage.emplace_back(s.begin(), s.end());
    storage.back().push_back('\0');
    return storage.back().data();
  };
  storage.reserve(argv.size() + extra_env.size() + 256);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(keep(a));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string key = entry.substr(0, entry.find('='));
    if (extra_env.count(key) == 0) envp.push_back(*e);
  }
  for (const auto& [k, v] : extra_env) envp.push_back(keep(k + "=" + v));
  envp.push_back(nullptr);
  const char* log = log_path.empty() ? nullptr : log_path.c_str();

  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Dies with the test, even when the test itself crashes and runs no destructor.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (log != nullptr) {
      int fd = ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  Child c;
  c.pid_ = pid;
  c.reaped_ = false;
  return c;
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(std::exchange(other.reaped_, true)),
      status_(other.status_) {}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    reaped_ = std::exchange(other.reaped_, true);
    status_ = other.status_;
  }
  return *this;
}

Child::~Child() {
  kill_and_reap();
}

bool Child::running() {
  if (reaped_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = st;
    return false;
  }
  return true;
}

void Child::signal(int sig) const {
  if (!reaped_ && pid_ > 0) ::kill(pid_, sig);
}

int Child::wait_for(std::chrono::milliseconds timeout) {
  if (reaped_) return status_;
  if (!wait_until([&] { return !running(); }, timeout)) return -1;
  return status_;
}

void Child::kill_and_reap() {
  if (reaped_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  status_ = st;
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(200);
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(20));
  }
}

int run(const std::string& command, std::string* output) {
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

bool is_mounted(const std::string& path, const std::string& fstype_prefix) {
  return mount_count(path, fstype_prefix) > 0;
}

void unmount_quietly(const std::string& path) {
  for (int i = 0; i < 8 && is_mounted(path); ++i) {
    if (::umount2(path.c_str(), 0) != 0) ::umount2(path.c_str(), MNT_DETACH);
  }
}

LoopDevice::LoopDevice(const std::string& file) {
  std::string out;
  if (run("losetup --find --show --read-only '" + file + "'", &out) != 0) {
    throw std::runtime_error("losetup failed: " + out);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  dev_ = out;
}

LoopDevice::~LoopDevice() {
  if (!dev_.empty()) run("losetup -d '" + dev_ + "'");
}

std::string binary_path(const std::string& name) {
  return std::string(FERRY_BINARY_DIR) + "/bin/" + name;
}

}  // namespace ferry::test
