#include "common/proc_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <sstream>

#include "common/unique_fd.h"

namespace ferry {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mount_path(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 3 < in.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        if (in[i + k] < '0' || in[i + k] > '7') {
          octal = false;
          break;
        }
        v = v * 8 + (in[i + k] - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

template <typename T>
bool parse_number(const std::string& s, T& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

Result<std::string> read_whole_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("opening '" + path + "'");
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("reading '" + path + "'");
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

Result<ProcStat> read_proc_stat(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  auto text = read_whole_file(path);
  if (!text.ok()) {
    int err = text.error().code;
    if (err == ENOENT || err == ESRCH)
      return Error{ESRCH, "process " + std::to_string(pid) + " does not exist"};
    return std::move(text).error();
  }
  // The command name (field 2) is in parentheses and may itself contain spaces and ')', so
  // the fields are counted from the LAST ')'.
  size_t close = text->rfind(')');
  if (close == std::string::npos) return Error{EIO, path + ": unexpected format (no ')')"};
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  std::istringstream rest(text->substr(close + 1));
  for (std::string f; fields.size() < 20 && rest >> f;) fields.push_back(f);
  if (fields.size() < 20) return Error{EIO, path + ": unexpected format (fewer than 22 fields)"};
  ProcStat st;
  st.state = fields[0][0];
  if (!parse_number(fields[1], st.ppid) || !parse_number(fields[19], st.start_time)) {
    return Error{EIO, path + ": unexpected format (non-numeric ppid or start time)"};
  }
  return st;
}

uint64_t live_process_start_time(pid_t pid) {
  if (pid <= 0) return 0;
  auto st = read_proc_stat(pid);
  if (!st.ok() || st->state == 'Z' || st->state == 'X') return 0;
  return st->start_time;
}

std::vector<MountEntry> read_mount_table() {
  std::vector<MountEntry> out;
  auto text = read_whole_file("/proc/self/mountinfo");
  if (!text.ok()) return out;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS"
    std::istringstream fields(line);
    std::string skipped;  // ID, PARENT, MAJ:MIN, ROOT
    std::string mnt;
    if (!(fields >> skipped >> skipped >> skipped >> skipped >> mnt)) continue;
    auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    std::string type;
    tail >> type;
    out.push_back({unescape_mount_path(mnt), type});
  }
  return out;
}

int mount_count(const std::string& path, const std::string& fstype_prefix) {
  int n = 0;
  for (const auto& m : read_mount_table()) {
    if (m.mountpoint == path && m.fstype.rfind(fstype_prefix, 0) == 0) ++n;
  }
  return n;
}

std::vector<std::string> mounts_at_or_below(const std::string& prefix) {
  std::vector<std::string> out;
  for (auto& m : read_mount_table()) {
    if (m.mountpoint == prefix || m.mountpoint.rfind(prefix + "/", 0) == 0)
      out.push_back(std::move(m.mountpoint));
  }
  return out;
}

}  // namespace ferry
