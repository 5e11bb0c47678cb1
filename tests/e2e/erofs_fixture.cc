#include "e2e/erofs_fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "e2e/fs_util.h"

namespace ferry::e2e {
namespace fs = std::filesystem;

const std::vector<Layout>& erofs_layouts() {
  static const std::vector<Layout> kLayouts = {
      {"default", {}, false, false},
      {"force_inode_extended", {"-Eforce-inode-extended"}, false, false},
      {"noinline_data", {"-Enoinline_data"}, false, false},
      {"chunk_4k", {"--chunksize=4096"}, false, false},
      {"chunk_64k", {"--chunksize=65536"}, false, false},
      {"chunk_1m_blobdev", {"--chunksize=1048576"}, true, false},
      {"chunk_4k_blobdev", {"--chunksize=4096"}, true, false},
      // -T sets every inode's mtime to the build time, so mkfs emits compact (32-byte) inodes
      // wherever uid/gid/nlink/size allow: the only layout here that has them at all.
      {"fixed_time_compact", {"-T1234567890"}, false, true},
  };
  return kLayouts;
}

void PrintTo(const Layout& layout, std::ostream* os) {
  *os << layout.name << " (mkfs.erofs";
  for (const auto& a : layout.mkfs_args) *os << " " << a;
  if (layout.blobdev) *os << " --blobdev=BLOB";
  *os << ")";
}

ImageDir::ImageDir() {
  std::string tmpl = "/tmp/ferry-e2e-img-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp /tmp: " + errno_text(errno));
  path_ = tmpl;
}

ImageDir::~ImageDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void run_mkfs(const std::vector<std::string>& args) {
  std::string cmd = "mkfs.erofs --quiet";
  for (const auto& a : args) cmd += " " + shell_quote(a);
  std::string out;
  if (test::run(cmd, &out) != 0) throw std::runtime_error("`" + cmd + "` failed: " + out);
}

ErofsImage make_erofs_image(const std::string& source, const std::string& out_dir, const Layout& layout) {
  ErofsImage img;
  img.image = out_dir + "/" + layout.name + ".img";
  std::vector<std::string> args = layout.mkfs_args;
  if (layout.blobdev) {
    img.blob = out_dir + "/" + layout.name + ".blob";
    args.push_back("--blobdev=" + img.blob);
  }
  args.push_back(img.image);
  args.push_back(source);
  run_mkfs(args);
  return img;
}

std::string missing_prerequisite() {
  if (::geteuid() != 0) return "the e2e tests must run as root (mknod, chown, mount)";
  if (test::run("command -v mkfs.erofs") != 0) return "mkfs.erofs not found: install erofs-utils";
  std::string filesystems;
  if (!read_text_file("/proc/filesystems", &filesystems)) return "cannot read /proc/filesystems";
  if (filesystems.find("\terofs\n") == std::string::npos) return "the kernel has no erofs filesystem";
  if (filesystems.find("\tfuse\n") == std::string::npos || ::access("/dev/fuse", R_OK | W_OK) != 0) {
    return "the kernel has no fuse filesystem or /dev/fuse is missing";
  }
  return {};
}

KernelErofsMount::KernelErofsMount(const ErofsImage& image, std::string mountpoint)
    : mnt_(std::move(mountpoint)) {
  // The kernel only takes block devices for device=, so the blob goes through a loop device;
  // the image itself through mount's own "loop" option (auto-detached on unmount).
  std::string options = "ro,loop";
  std::vector<std::string> blobs = image.devices;
  if (!image.blob.empty()) blobs.insert(blobs.begin(), image.blob);
  for (const auto& blob : blobs) {
    blob_loops_.push_back(std::make_unique<test::LoopDevice>(blob));
    options += ",device=" + blob_loops_.back()->path();
  }
  std::string out;
  const std::string cmd =
      "mount -t erofs -o " + shell_quote(options) + " " + shell_quote(image.image) + " " + shell_quote(mnt_);
  if (test::run(cmd, &out) != 0) throw std::runtime_error("`" + cmd + "` failed: " + out);
  if (!test::is_mounted(mnt_, "erofs")) {
    test::unmount_quietly(mnt_);
    throw std::runtime_error("`" + cmd + "` succeeded but no erofs is mounted at " + mnt_);
  }
}

KernelErofsMount::~KernelErofsMount() {
  test::unmount_quietly(mnt_);
  blob_loops_.clear();
}

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string backend_config_json(const std::string& type, const std::string& key, const std::string& value) {
  return "{\"device\": {\"backend\": {\"type\": " + json_string(type) + ", \"config\": {" + json_string(key) +
         ": " + json_string(value) + "}}}}\n";
}

std::string write_blob_config(const std::string& path, const std::string& blob_file) {
  write_text_file(path, backend_config_json("localfs", "blob_file", blob_file));
  return path;
}

std::vector<std::string> die_with_parent(std::vector<std::string> argv) {
  static const bool have_setpriv = ::access("/usr/bin/setpriv", X_OK) == 0;
  if (!have_setpriv) return argv;
  argv.insert(argv.begin(), {"/usr/bin/setpriv", "--pdeathsig", "KILL", "--"});
  return argv;
}

FerrydMount::FerrydMount(std::string mountpoint, const std::string& image, const std::string& config,
                         std::string log_path, const std::vector<std::string>& extra_args)
    : mnt_(std::move(mountpoint)), log_path_(std::move(log_path)) {
  std::vector<std::string> argv = {
      test::binary_path("ferryd"), "fuse", "--mountpoint", mnt_, "--bootstrap", image};
  if (!config.empty()) {
    argv.push_back("--config");
    argv.push_back(config);
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  child_ = test::Child::spawn(die_with_parent(argv), log_path_);
}

FerrydMount::~FerrydMount() {
  // Kill first: unmounting a FUSE mount whose server hangs could block on the DESTROY request.
  child_.kill_and_reap();
  test::unmount_quietly(mnt_);
}

std::string FerrydMount::wait_mounted(std::chrono::milliseconds timeout) {
  bool exited = false;
  bool ok = test::wait_until(
      [&] {
        if (test::is_mounted(mnt_, "fuse")) return true;
        exited = !child_.running();
        return exited;
      },
      timeout);
  if (ok && !exited) return {};
  const int status = child_.wait_for(std::chrono::milliseconds(0));
  std::string why = exited ? "ferryd exited (wait status " + std::to_string(status) + ") before mounting"
                           : "no fuse mount at " + mnt_ + " after " + std::to_string(timeout.count()) + " ms";
  return why + "; ferryd log:\n" + log();
}

int FerrydMount::terminate(std::chrono::milliseconds timeout) {
  child_.signal(SIGTERM);
  return child_.wait_for(timeout);
}

std::string FerrydMount::log() const {
  return file_tail(log_path_);
}

Watchdog::Watchdog(pid_t pid, std::chrono::milliseconds timeout) {
  thread_ = std::thread([this, pid, timeout] {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return done_; })) {
      fired_ = true;
      ::kill(pid, SIGKILL);
    }
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Watchdog::fired() const {
  std::lock_guard lock(mu_);
  return fired_;
}

bool RunResult::exited() const {
  return !timed_out && status >= 0 && WIFEXITED(status);
}

int RunResult::exit_code() const {
  return exited() ? WEXITSTATUS(status) : -1;
}

std::string RunResult::describe() const {
  std::string s;
  if (stopped) {
    s = "still running when stopped";
  } else if (timed_out) {
    s = "timed out";
  } else if (WIFEXITED(status)) {
    s = "exit code " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    s = "killed by signal " + std::to_string(WTERMSIG(status));
  } else {
    s = "wait status " + std::to_string(status);
  }
  return s + "\n--- stdout ---\n" + printable(out, 2000) + "\n--- stderr ---\n" + printable(err, 2000);
}

RunResult run_with_deadline(const std::vector<std::string>& argv, const std::string& scratch_dir,
                            std::chrono::milliseconds timeout, const std::function<bool()>& stop_when) {
  static std::atomic<int> counter{0};
  const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(counter++);
  const std::string out_path = scratch_dir + "/run-" + tag + ".out";
  const std::string err_path = scratch_dir + "/run-" + tag + ".err";
  // The shell only sets up the redirections, then exec's argv in its own pid.
  std::vector<std::string> sh = {"/bin/sh", "-c",
                                 "exec \"$0\" \"$@\" >\"$FERRY_E2E_OUT\" 2>\"$FERRY_E2E_ERR\""};
  sh.insert(sh.end(), argv.begin(), argv.end());
  RunResult r;
  {
    test::Child child = test::Child::spawn(die_with_parent(sh), {},
                                           {{"FERRY_E2E_OUT", out_path}, {"FERRY_E2E_ERR", err_path}});
    bool exited = false;
    const bool done = test::wait_until(
        [&] {
          exited = !child.running();
          return exited || (stop_when && stop_when());
        },
        timeout);
    if (exited) {
      r.status = child.wait_for(std::chrono::milliseconds(0));
    } else {
      r.timed_out = !done;
      r.stopped = done;
    }
  }  // the Child kills it if it is still running
  read_text_file(out_path, &r.out);
  read_text_file(err_path, &r.err);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  return r;
}

std::vector<std::string> compare_access_as(uid_t uid, gid_t gid, const std::string& root_a,
                                           const std::string& root_b, const std::vector<std::string>& rels) {
  // Everything the child needs is prepared before fork: it only makes system calls.
  std::vector<std::string> paths;
  for (const auto& rel : rels) {
    paths.push_back(root_a + "/" + rel);
    paths.push_back(root_b + "/" + rel);
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {"pipe2 failed: " + errno_text(errno)};
  Fd rd(fds[0]);
  Fd wr(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return {"fork failed: " + errno_text(errno)};
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0) {
      ::_exit(2);
    }
    for (const auto& p : paths) {
      char answer[2];
      answer[0] = ::access(p.c_str(), R_OK) == 0 ? 'r' : static_cast<char>('0' + (errno % 64));
      answer[1] = ::access(p.c_str(), X_OK) == 0 ? 'x' : static_cast<char>('0' + (errno % 64));
      if (::write(wr.get(), answer, 2) != 2) ::_exit(3);
    }
    ::_exit(0);
  }
  wr.reset();
  std::string answers;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answers.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::vector<std::string> diffs;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || answers.size() != paths.size() * 2) {
    diffs.push_back("access probe as " + std::to_string(uid) + ":" + std::to_string(gid) +
                    " failed (status " + std::to_string(status) + ")");
    return diffs;
  }
  auto text = [](char c) -> std::string {
    if (c == 'r' || c == 'x') return "allowed";
    return "denied: " + errno_text(c - '0');
  };
  for (size_t i = 0; i < rels.size(); ++i) {
    const char* a = answers.data() + 4 * i;
    const char* b = a + 2;
    for (int k = 0; k < 2; ++k) {
      if (a[k] != b[k]) {
        diffs.push_back(printable(rels[i]) + ": access(" + (k == 0 ? "R_OK" : "X_OK") + ") as " +
                        std::to_string(uid) + ":" + std::to_string(gid) + ": A " + text(a[k]) + ", B " +
                        text(b[k]));
      }
    }
  }
  return diffs;
}

std::string prefer_tmpfs_tmpdir() {
  const char* current = std::getenv("TMPDIR");
  if (current != nullptr && *current != '\0') return current;
  constexpr const char* kShm = "/dev/shm";
  constexpr unsigned long long kNeeded = 2ULL << 30;
  struct statfs sfs {};
  if (::statfs(kShm, &sfs) != 0 || sfs.f_type != TMPFS_MAGIC ||
      static_cast<unsigned long long>(sfs.f_bavail) * sfs.f_bsize < kNeeded) {
    return "/tmp";
  }
  // Probe what the tree needs.
  std::string probe = std::string(kShm) + "/ferry-probe-XXXXXX";
  Fd fd(::mkstemp(probe.data()));
  if (!fd.valid()) return "/tmp";
  bool ok = ::fsetxattr(fd.get(), "user.ferry_probe", "1", 1, 0) == 0 &&
            ::fsetxattr(fd.get(), "trusted.ferry_probe", "1", 1, 0) == 0;
  fd.reset();
  if (ok) {
    Fd direct(::open(probe.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
    ok = direct.valid();
  }
  ::unlink(probe.c_str());
  if (!ok) return "/tmp";
  ::setenv("TMPDIR", kShm, 1);
  return kShm;
}

std::string file_tail(const std::string& path, size_t max) {
  std::string s;
  if (!read_text_file(path, &s)) return "(cannot read " + path + ")";
  if (s.size() > max) s = "[...]" + s.substr(s.size() - max);
  return s;
}

}  // namespace ferry::e2e
