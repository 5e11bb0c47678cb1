// Plumbing for the e2e tests: the mkfs.erofs layouts under test, building images, mounting them
// with the kernel's EROFS driver (blob devices through loop devices), running ferryd on them, and
// running a command under a deadline with separate stdout/stderr. Every resource is an RAII guard
// so a failing test leaves nothing mounted, attached or running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace ferry::e2e {

struct Layout {
  std::string name;                    // a gtest-safe identifier
  std::vector<std::string> mkfs_args;  // besides --blobdev, which `blobdev` adds
  bool blobdev = false;                // chunk data in a separate blob device
  bool fixed_mtime = false;            // built with -T: every mtime differs from the source
};

// For gtest's parameter printing.
void PrintTo(const Layout& layout, std::ostream* os);

// The layouts every comparison runs on.
const std::vector<Layout>& erofs_layouts();

struct ErofsImage {
  std::string image;  // the metadata image (bootstrap)
  std::string blob;   // the --blobdev file, empty when none
  std::vector<std::string> devices;  // or: several extra devices, in device order (Ferry images)
};

// A private directory for images, removed recursively on destruction. It is always under /tmp:
// mkfs.erofs 1.5 stages chunked files in an O_TMPFILE in /tmp (P_tmpdir, whatever TMPDIR says) and
// copy_file_range()s them into the image, which fails with EXDEV (reported as "[Error 5]
// Input/output error") when the image is on another filesystem.
class ImageDir {
 public:
  ImageDir();
  ~ImageDir();
  ImageDir(const ImageDir&) = delete;
  ImageDir& operator=(const ImageDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs mkfs.erofs; throws std::runtime_error (with mkfs's output) on failure.
void run_mkfs(const std::vector<std::string>& args);

// Builds `layout`'s image of `source` as `out_dir`/<name>.img (+ .blob); throws on failure.
ErofsImage make_erofs_image(const std::string& source, const std::string& out_dir, const Layout& layout);

// Why these tests cannot run here (empty when they can): not root, no mkfs.erofs, no erofs or
// fuse in the kernel.
std::string missing_prerequisite();

// The kernel's EROFS driver mounted read-only at `mountpoint`; unmounted (and the blobs' loop
// devices detached) on destruction. Throws std::runtime_error when the mount fails.
class KernelErofsMount {
 public:
  KernelErofsMount(const ErofsImage& image, std::string mountpoint);
  ~KernelErofsMount();
  KernelErofsMount(const KernelErofsMount&) = delete;
  KernelErofsMount& operator=(const KernelErofsMount&) = delete;
  [[nodiscard]] const std::string& path() const { return mnt_; }

 private:
  std::vector<std::unique_ptr<test::LoopDevice>> blob_loops_;
  std::string mnt_;
};

// nydusd-shaped config: {"device":{"backend":{"type":TYPE,"config":{KEY:VALUE}}}}.
std::string backend_config_json(const std::string& type, const std::string& key, const std::string& value);

// Writes a localfs config naming `blob_file`; returns `path`.
std::string write_blob_config(const std::string& path, const std::string& blob_file);

// A ferryd process serving `ferryd fuse --mountpoint M --bootstrap IMAGE [--config CONFIG]`.
// Destruction SIGKILLs it (by pid) if still running and unmounts whatever it left.
class FerrydMount {
 public:
  FerrydMount(std::string mountpoint, const std::string& image, const std::string& config,
              std::string log_path, const std::vector<std::string>& extra_args = {});
  ~FerrydMount();
  FerrydMount(const FerrydMount&) = delete;
  FerrydMount& operator=(const FerrydMount&) = delete;

  // Waits until a fuse* filesystem is mounted at the mountpoint. Returns an error text (with
  // ferryd's log) when ferryd exits first or the deadline passes; empty on success.
  std::string wait_mounted(std::chrono::milliseconds timeout);
  void signal(int sig) const { child_.signal(sig); }
  // Waits for ferryd to exit; returns the wait status, or -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout) { return child_.wait_for(timeout); }
  // SIGTERM, then wait_exit().
  int terminate(std::chrono::milliseconds timeout);
  [[nodiscard]] std::string log() const;
  [[nodiscard]] pid_t pid() const { return child_.pid(); }
  [[nodiscard]] const std::string& path() const { return mnt_; }

 private:
  std::string mnt_;
  std::string log_path_;
  test::Child child_;
};

// SIGKILLs `pid` if still alive when `timeout` passes: a FUSE request that hangs then fails with
// ENOTCONN instead of wedging the test. Disarmed on destruction.
class Watchdog {
 public:
  Watchdog(pid_t pid, std::chrono::milliseconds timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  [[nodiscard]] bool fired() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;
};

struct RunResult {
  int status = -1;  // wait status; -1 when it timed out or was stopped (it was then killed)
  bool timed_out = false;
  bool stopped = false;  // killed because `stop_when` held
  std::string out;
  std::string err;
  [[nodiscard]] bool exited() const;
  [[nodiscard]] int exit_code() const;  // -1 unless it exited normally
  [[nodiscard]] std::string describe() const;
};

// Runs argv (argv[0] a path) under a deadline, capturing stdout and stderr into files in
// `scratch_dir`. The process is killed (by pid) on timeout, or as soon as `stop_when` holds.
RunResult run_with_deadline(const std::vector<std::string>& argv, const std::string& scratch_dir,
                            std::chrono::milliseconds timeout, const std::function<bool()>& stop_when = {});

// Prefixes argv so the process dies with the test (setpriv --pdeathsig KILL) when setpriv exists.
std::vector<std::string> die_with_parent(std::vector<std::string> argv);

// Whether every path in `rels` (relative to each root) gives the same access(R_OK) and
// access(X_OK) answers under both roots to a process running as uid:gid with no groups.
// Returns one line per disagreement.
std::vector<std::string> compare_access_as(uid_t uid, gid_t gid, const std::string& root_a,
                                           const std::string& root_b, const std::vector<std::string>& rels);

// Points TMPDIR at /dev/shm when TMPDIR is unset and /dev/shm is a tmpfs with room that keeps
// everything the trees need (user/trusted/security xattrs, O_DIRECT): creating and removing a
// 20,000-entry, 100 MiB tree on a disk costs seconds of journal and discard. Call before any
// TempDir exists.
// Returns the directory temp dirs now go to.
std::string prefer_tmpfs_tmpdir();

// The tail of a (log) file, at most `max` bytes.
std::string file_tail(const std::string& path, size_t max = 4000);

}  // namespace ferry::e2e
