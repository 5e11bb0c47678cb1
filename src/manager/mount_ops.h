// Small filesystem and process helpers of the manager: unmounts, bind mounts, files, ids (the
// mount table itself is read by common/proc_files.h). Each does one system-level thing and reports failure as
// a value.
//
// None of them opens a file INSIDE a managed mount: the mount table is read from
// /proc/self/mountinfo, never by stat()ing a mountpoint (a dead or hung daemon would make that
// block or fail, and an fd into a FUSE mount inherited by a spawned daemon would make its exec send
// FLUSH to a possibly dead daemon).
//
// Thread-safety: pure functions of the system state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/dirs.h"
#include "common/proc_files.h"
#include "common/result.h"

namespace ferry::manager {

// Detaches every mount stacked at `path` (MNT_DETACH: never blocks on a dead FUSE connection).
// No error when nothing is mounted there.
Status umount_all(const std::string& path);
// umount2(path, 0), falling back to MNT_DETACH when busy.
Status umount_one(const std::string& path);
// mount(2) MS_BIND of `source` onto `target`.
Status bind_mount(const std::string& source, const std::string& target);

// 12 random lowercase hex characters (getrandom).
std::string random_id();
// Writes `text` to `path` atomically (temp file + rename), mode 0600.
Status write_file(const std::string& path, const std::string& text);
// The last `lines` non-empty lines of a text file ("" when unreadable), joined by " | ".
std::string log_tail(const std::string& path, int lines = 3);
// The text after `marker` on the last line containing it, reading `path` from byte `offset`
// on ("" when there is none): ferryd's own reason ("ferryd: error: ...") in its log.
std::string last_marked_line(const std::string& path, uint64_t offset, const std::string& marker);
// The size of the file at `path` (0 when it does not exist).
uint64_t file_size(const std::string& path);
// Checks that `path` is absolute and names an existing directory / regular file (EINVAL with a
// message naming `what` otherwise).
Status check_abs_dir(const std::string& path, const std::string& what);
Status check_abs_file(const std::string& path, const std::string& what);

}  // namespace ferry::manager
