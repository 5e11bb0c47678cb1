#include "manager/mount_ops.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>

#include "common/proc_files.h"
#include "common/unique_fd.h"

namespace ferry::manager {

Status umount_all(const std::string& path) {
  for (int i = 0; i < 16 && mount_count(path) > 0; ++i) {
    if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
      return errno_error("unmounting '" + path + "'");
    }
  }
  return {};
}

Status umount_one(const std::string& path) {
  if (::umount2(path.c_str(), 0) == 0) return {};
  if (errno == EBUSY && ::umount2(path.c_str(), MNT_DETACH) == 0) return {};
  return errno_error("unmounting '" + path + "'");
}

Status bind_mount(const std::string& source, const std::string& target) {
  if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return errno_error("bind-mounting '" + source + "' at '" + target + "'");
  }
  return {};
}

std::string random_id() {
  unsigned char bytes[6];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) {
    id.push_back(hex[b >> 4]);
    id.push_back(hex[b & 15]);
  }
  return id;
}

Status write_file(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return errno_error("creating '" + tmp + "'");
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("writing '" + tmp + "'");
    }
    done += static_cast<size_t>(n);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return errno_error("renaming '" + tmp + "' to '" + path + "'");
  return {};
}

std::string log_tail(const std::string& path, int lines) {
  std::ifstream in(path);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string out;
  for (const auto& l : tail) out += (out.empty() ? "" : " | ") + l;
  return out;
}

std::string last_marked_line(const std::string& path, uint64_t offset, const std::string& marker) {
  std::ifstream in(path);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string line;
  std::string found;
  while (std::getline(in, line)) {
    if (auto at = line.find(marker); at != std::string::npos) found = line.substr(at + marker.size());
  }
  return found;
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

Status check_abs_dir(const std::string& path, const std::string& what) {
  if (path.empty() || path[0] != '/')
    return Error{EINVAL, what + " must be an absolute path, got '" + path + "'"};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Error{EINVAL, what + " '" + path + "': " + std::strerror(errno)};
  if (!S_ISDIR(st.st_mode)) return Error{EINVAL, what + " '" + path + "' is not a directory"};
  return {};
}

Status check_abs_file(const std::string& path, const std::string& what) {
  if (path.empty() || path[0] != '/')
    return Error{EINVAL, what + " must be an absolute path, got '" + path + "'"};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Error{EINVAL, what + " '" + path + "': " + std::strerror(errno)};
  if (!S_ISREG(st.st_mode)) return Error{EINVAL, what + " '" + path + "' is not a regular file"};
  return {};
}

}  // namespace ferry::manager
