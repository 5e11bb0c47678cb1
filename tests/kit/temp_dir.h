// Private temp dirs and the mounts below them, for tests and benchmarks that run as root and in
// parallel: whatever a test mounts or leaves running under its dir is undone when the dir goes.
#pragma once

#include <string>

#include "common/result.h"

namespace ferry::testkit {

// A private directory "$TMPDIR/<prefix>XXXXXX" (else /tmp), removed recursively on destruction,
// after (with `kill_leftovers`) SIGKILLing by pid every process whose command line names a path
// below it, and unmounting everything mounted below it (deepest first; lazily as a last resort).
// If something stays mounted the dir is left in place, with a message. With FERRY_KEEP_FAILED=1
// the dir of a failed test (see hooks.h) is kept for a post-mortem. Movable; one owner.
class TempDir {
 public:
  static Result<TempDir> create(const std::string& prefix = "ferry-test-", bool kill_leftovers = false);
  // The same for tests: throws std::runtime_error when mkdtemp fails.
  TempDir();
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }
  // SIGKILLs (by pid) every process naming the dir until none is left (one that dies may have
  // forked an instant before), waiting (deadline) for each to be gone.
  void kill_leftovers() const;

 private:
  TempDir(std::string path, bool kill_leftovers) : path_(std::move(path)), kill_leftovers_(kill_leftovers) {}
  void remove();

  std::string path_;
  bool kill_leftovers_ = false;
};

// True when `path` is a mount point (of a file system type starting with `fstype_prefix`, e.g.
// "fuse", "erofs", when given).
bool is_mounted(const std::string& path, const std::string& fstype_prefix = "");
// Unmounts `path` while it is mounted: normally, then (busy) lazily. Never fails.
void unmount_quietly(const std::string& path);

// Unmounts `path` on destruction.
class MountGuard {
 public:
  explicit MountGuard(std::string path) : path_(std::move(path)) {}
  ~MountGuard() { unmount_quietly(path_); }
  MountGuard(const MountGuard&) = delete;
  MountGuard& operator=(const MountGuard&) = delete;

 private:
  std::string path_;
};

// A read-only loop device attached to a file (losetup), detached on destruction. Throws
// std::runtime_error when losetup fails.
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

}  // namespace ferry::testkit
