#include "common/dirs.h"

#include <sys/stat.h>

#include <cerrno>

namespace ferry {

Status make_dirs(const std::string& path, mode_t mode) {
  if (path.empty()) return ok_status();
  // Each prefix in turn, the path itself last: "/a/b/c" -> "/a", "/a/b", "/a/b/c".
  for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
    const std::string dir = path.substr(0, pos);
    if (!dir.empty() && dir != "/" && ::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) {
      return errno_error("creating directory '" + dir + "'");
    }
    if (pos == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error("checking directory '" + path + "'");
  if (!S_ISDIR(st.st_mode)) return Error{ENOTDIR, "'" + path + "' exists and is not a directory"};
  return ok_status();
}

}  // namespace ferry
