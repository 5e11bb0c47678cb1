// What the kernel says about processes and mounts through /proc, read the way a scanner of
// processes that may exit at any moment must read it.
//
// /proc/<pid>/* fails with ESRCH when the process exits between open() and read(): these are
// POSIX reads that turn that into an error value (libstdc++'s istreambuf_iterator would throw).
// The mount table comes from /proc/self/mountinfo, never from stat()ing a mountpoint: a dead or
// hung FUSE daemon would make that block.
//
// Thread-safety: pure functions of the system state. Errors are values.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace ferry {

// The whole content of a (small) file: /proc files, logs, configs.
Result<std::string> read_whole_file(const std::string& path);

// The fields of /proc/<pid>/stat that process bookkeeping needs.
struct ProcStat {
  char state = '?';  // R, S, D, Z (zombie), X (dead), ...
  pid_t ppid = 0;
  uint64_t start_time = 0;  // clock ticks after boot: with the pid, names one process for good
};
// ESRCH when the process does not exist (or exited while being read).
Result<ProcStat> read_proc_stat(pid_t pid);
// The start time of a live (not zombie) process, 0 when there is none.
uint64_t live_process_start_time(pid_t pid);

// One line of /proc/self/mountinfo (paths unescaped).
struct MountEntry {
  std::string mountpoint;
  std::string fstype;  // "fuse", "fuse.ferryd", "erofs", ...
};
std::vector<MountEntry> read_mount_table();
// How many mounts are stacked at exactly `path` whose type starts with `fstype_prefix`.
int mount_count(const std::string& path, const std::string& fstype_prefix = "");
// Mountpoints equal to `prefix` or below it, in mount order (unmount in reverse).
std::vector<std::string> mounts_at_or_below(const std::string& prefix);

}  // namespace ferry
