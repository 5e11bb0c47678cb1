#include "fuse/transport/fuse_session.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/proc_files.h"

namespace ferry::fuse {
namespace {

// /dev/fuse is misc device 10:229.
constexpr unsigned kFuseMajor = 10;
constexpr unsigned kFuseMinor = 229;

}  // namespace

bool is_fuse_mountpoint(const std::string& path) {
  for (const auto& m : read_mount_table()) {
    if (m.mountpoint == path && (m.fstype == "fuse" || m.fstype.rfind("fuse.", 0) == 0)) return true;
  }
  return false;
}

Result<FuseSession> FuseSession::mount(const MountOptions& options) {
  struct stat st {};
  if (::stat(options.mountpoint.c_str(), &st) != 0) {
    return errno_error("mountpoint '" + options.mountpoint + "'");
  }
  if (!S_ISDIR(st.st_mode))
    return Error{ENOTDIR, "mountpoint '" + options.mountpoint + "' is not a directory"};
  UniqueFd fd(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!fd) return errno_error("cannot open /dev/fuse");
  std::string data = "fd=" + std::to_string(fd.get()) +
                     ",rootmode=40000,user_id=0,group_id=0,max_read=" + std::to_string(options.max_read);
  if (options.allow_other) data += ",allow_other";
  if (options.default_permissions) data += ",default_permissions";
  std::string type = "fuse." + options.subtype;
  if (::mount(options.fsname.c_str(), options.mountpoint.c_str(), type.c_str(),
              MS_RDONLY | MS_NOSUID | MS_NODEV, data.c_str()) != 0) {
    return errno_error("cannot mount FUSE at '" + options.mountpoint + "'");
  }
  return FuseSession(std::move(fd), options.mountpoint);
}

Result<FuseSession> FuseSession::adopt(UniqueFd fd, std::string mountpoint) {
  if (!fd) return Error{EBADF, "no file descriptor was handed over"};
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("handed-over fd");
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != kFuseMajor || minor(st.st_rdev) != kFuseMinor) {
    return Error{EINVAL, "handed-over fd is not /dev/fuse"};
  }
  return FuseSession(std::move(fd), std::move(mountpoint));
}

Result<ReadOutcome> FuseSession::read_request(std::span<std::byte> buf, size_t& len) const {
  while (true) {
    ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
    if (n > 0) {
      len = static_cast<size_t>(n);
      return ReadOutcome::kRequest;
    }
    if (n == 0) return ReadOutcome::kUnmounted;
    switch (errno) {
      case EINTR:
        return ReadOutcome::kInterrupted;
      case ENOENT:  // the request was interrupted between queueing and our read: next one
      case EAGAIN:
        continue;
      case ENODEV:  // unmounted or aborted
        return ReadOutcome::kUnmounted;
      default:
        return errno_error("reading /dev/fuse");
    }
  }
}

int FuseSession::write(std::span<const iovec> iov) const {
  while (true) {
    ssize_t n = ::writev(fd_.get(), iov.data(), static_cast<int>(iov.size()));
    if (n >= 0) return 0;
    if (errno == EINTR) continue;
    return -errno;
  }
}

Status FuseSession::unmount() {
  if (mountpoint_.empty() || !is_fuse_mountpoint(mountpoint_)) return {};
  if (::umount2(mountpoint_.c_str(), 0) == 0) return {};
  if (errno == EBUSY && ::umount2(mountpoint_.c_str(), MNT_DETACH) == 0) return {};
  return errno_error("cannot unmount '" + mountpoint_ + "'");
}

Result<UniqueFd> FuseSession::dup_fd() const {
  UniqueFd copy(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy) return errno_error("dup of /dev/fuse fd");
  return copy;
}

}  // namespace ferry::fuse
