#include "kit/temp_dir.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>
#include <vector>

#include "common/proc_files.h"
#include "kit/hooks.h"
#include "kit/process.h"
#include "kit/wait.h"

namespace ferry::testkit {
namespace fs = std::filesystem;

Result<TempDir> TempDir::create(const std::string& prefix, bool kill_leftovers) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return errno_error("mkdtemp '" + tmpl + "'");
  return TempDir(buf.data(), kill_leftovers);
}

TempDir::TempDir() {
  auto made = create();
  if (!made.ok()) throw std::runtime_error(made.error().message);
  *this = std::move(*made);
}

TempDir::TempDir(TempDir&& other) noexcept
    : path_(std::exchange(other.path_, {})), kill_leftovers_(other.kill_leftovers_) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
    kill_leftovers_ = other.kill_leftovers_;
  }
  return *this;
}

TempDir::~TempDir() {
  remove();
}

void TempDir::remove() {
  if (path_.empty()) return;
  if (kill_leftovers_) kill_leftovers();
  auto mounts = mounts_at_or_below(path_);
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) unmount_quietly(*it);
  if (!mounts_at_or_below(path_).empty()) {
    std::fprintf(stderr, "something is still mounted below '%s'; leaving it\n", path_.c_str());
    return;
  }
  // FERRY_KEEP_FAILED=1 keeps a failed test's directory (daemon logs, states) for a post-mortem.
  const char* keep = std::getenv("FERRY_KEEP_FAILED");
  if (keep != nullptr && std::string(keep) == "1" && test_failed()) {
    std::fprintf(stderr, "kept %s (FERRY_KEEP_FAILED=1)\n", path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (ec) std::fprintf(stderr, "cannot remove '%s': %s\n", path_.c_str(), ec.message().c_str());
  path_.clear();
}

void TempDir::kill_leftovers() const {
  for (int round = 0; round < 10; ++round) {
    auto pids = processes_naming(path_);
    if (pids.empty()) return;
    for (pid_t pid : pids) {
      std::fprintf(stderr, "killing leftover pid %d (names %s)\n", pid, path_.c_str());
      ::kill(pid, SIGKILL);
    }
    for (pid_t pid : pids) {
      if (!wait_gone(pid, 10s)) std::fprintf(stderr, "pid %d survived SIGKILL for 10 s\n", pid);
    }
  }
}

bool is_mounted(const std::string& path, const std::string& fstype_prefix) {
  return mount_count(path, fstype_prefix) > 0;
}

void unmount_quietly(const std::string& path) {
  for (int i = 0; i < 8 && is_mounted(path); ++i) {
    if (::umount2(path.c_str(), 0) == 0) continue;
    if (i < 2 && errno == EBUSY) {
      // A process that just closed its last file there may not be gone yet.
      wait_until([&] { return !is_mounted(path); }, 100ms);
      continue;
    }
    ::umount2(path.c_str(), MNT_DETACH);
  }
}

LoopDevice::LoopDevice(const std::string& file) {
  std::string out;
  if (run_shell("losetup --find --show --read-only '" + file + "'", &out) != 0) {
    throw std::runtime_error("losetup failed: " + out);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  dev_ = out;
}

LoopDevice::~LoopDevice() {
  if (!dev_.empty()) run_shell("losetup -d '" + dev_ + "'");
}

}  // namespace ferry::testkit
