// Helpers every test uses to stay hygienic: private temp dirs, child processes killed by pid,
// mounts that are always unmounted, and waits that poll a condition under a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ferry::test {

using namespace std::chrono_literals;

// A private directory under $TMPDIR (or /tmp), removed recursively on destruction. Anything
// still mounted below it is lazily unmounted first so a failed test cannot wedge the next.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// A child process started with fork/exec. The destructor kills it (SIGKILL, by pid) and
// reaps it unless it was already waited for.
class Child {
 public:
  Child() = default;
  // argv[0] is the executable path. stdout/stderr go to `log_path` when not empty.
  static Child spawn(const std::vector<std::string>& argv, const std::string& log_path = {},
                     const std::map<std::string, std::string>& extra_env = {});
  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] bool running();  // not yet exited (reaps if it has)
  void signal(int sig) const;
  // Waits up to `timeout` for the exit; returns the wait status, or -1 on timeout.
  int wait_for(std::chrono::milliseconds timeout);
  void kill_and_reap();

 private:
  pid_t pid_ = -1;
  bool reaped_ = true;
  int status_ = 0;
};

// The whole content of a file, "" if it cannot be read (POSIX reads: a /proc file of a process
// that exits meanwhile is "" or partial, never an exception).
std::string read_file(const std::string& path);

// Polls `cond` every millisecond or so until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

// Runs a shell command; returns its exit status (0 = success). Output goes to `output` if given.
int run(const std::string& command, std::string* output = nullptr);

// True when `path` is currently a mount point of the given fs type prefix ("fuse", "erofs").
bool is_mounted(const std::string& path, const std::string& fstype_prefix = "");

// Unmounts `path` if mounted (normal, then lazy). Never throws.
void unmount_quietly(const std::string& path);

// Unmounts on destruction.
class MountGuard {
 public:
  explicit MountGuard(std::string path) : path_(std::move(path)) {}
  ~MountGuard() { unmount_quietly(path_); }
  MountGuard(const MountGuard&) = delete;
  MountGuard& operator=(const MountGuard&) = delete;

 private:
  std::string path_;
};

// A loop device attached to a file, detached on destruction.
class LoopDevice {
 public:
  explicit LoopDevice(const std::string& file);
  ~LoopDevice();
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  [[nodiscard]] const std::string& path() const { return dev_; }

 private:
  std::string dev_;
};

// Path of a built binary (ferryd, ...) in the build tree.
std::string binary_path(const std::string& name);

}  // namespace ferry::test
