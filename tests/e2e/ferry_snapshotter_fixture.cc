#include "e2e/ferry_snapshotter_fixture.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/proc_files.h"
#include "e2e/containerd_fixture.h"
#include "e2e/erofs_fixture.h"
#include "e2e/tar_writer.h"

namespace ferry::e2e {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const char* const kListing =
    "cd / && echo \"/ $(stat -c '%a %u:%g' /)\" && find data etc/ferry | sort | while read f; do "
    "if [ -L \"$f\" ]; then echo \"$f link $(readlink \"$f\")\"; "
    "elif [ -f \"$f\" ]; then echo \"$f file $(stat -c '%a %u:%g %s' \"$f\") $(sha256sum < \"$f\" | cut -d' "
    "' -f1)\"; "
    "else echo \"$f $(stat -c '%F %a %u:%g' \"$f\")\"; fi; done";

namespace {
constexpr const char* kBusybox = "/bin/busybox";
}

std::string containerd_snapshotter_prerequisite() {
  std::string missing = ContainerdServer::missing_prerequisite();
  if (missing.empty() && test::run_shell("command -v runc >/dev/null") != 0) missing = "runc is not installed";
  if (missing.empty() &&
      test::run_shell("command -v skopeo >/dev/null && command -v docker-registry >/dev/null") != 0)
    missing = "skopeo or docker-registry is not installed";
  if (missing.empty() && !fs::exists(kBusybox)) missing = "busybox-static (/bin/busybox) is not installed";
  return missing;
}

FerrySnapshotter::FerrySnapshotter(const test::TempDir& dir, std::string extra_toml) : dir_(dir) {
  std::ofstream(dir_ / "ferry.toml") << "version = 1\n"
                                      << "root = \"" << dir_ / "root" << "\"\n"
                                      << "address = \"" << socket() << "\"\n"
                                      << "[daemon]\nnydusd_path = \"" << test::binary_path("ferryd") << "\"\n"
                                      << "[system]\naddress = \"" << system_socket() << "\"\n"
                                      << "[log]\ndir = \"" << dir_ / "logs" << "\"\n"
                                      << extra_toml;
}

FerrySnapshotter::~FerrySnapshotter() {
  if (process_.running()) {
    for (pid_t pid : daemon_pids(true)) ::kill(pid, SIGKILL);
  }
  process_.kill_and_reap();
  auto mounts = mounts_at_or_below(dir_.path());
  std::sort(mounts.rbegin(), mounts.rend());  // deepest first
  for (const auto& m : mounts) test::unmount_quietly(m);
}

bool FerrySnapshotter::start() {
  process_ = test::Process::start({test::binary_path("ferry-snapshotter"), "--config", dir_ / "ferry.toml"},
                                  dir_ / "ferry-snapshotter.out");
  return test::wait_until([&] { return !process_.running() || fs::exists(socket()); }, 30s) &&
         process_.running();
}

void FerrySnapshotter::kill() {
  process_.kill_and_reap();
}

std::string FerrySnapshotter::log() const {
  return file_tail(dir_ / "logs/ferry-snapshotter.log");
}

RunResult FerrySnapshotter::ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {test::binary_path("ferryctl"), "--socket", system_socket()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_with_deadline(argv, dir_.path(), 30s);
}

std::vector<pid_t> FerrySnapshotter::daemon_pids(bool standbys) {
  std::vector<pid_t> pids;
  RunResult r = ctl({"daemons", "--json"});
  if (r.exit_code() != 0) return pids;
  auto list = nlohmann::json::parse(r.out, nullptr, false);
  if (!list.is_array()) return pids;
  for (const auto& d : list) {
    if (!d.is_object()) continue;
    if (d.value("pid", 0) > 0) pids.push_back(d["pid"].get<pid_t>());
    if (standbys && d.value("standby_pid", 0) > 0) pids.push_back(d["standby_pid"].get<pid_t>());
  }
  return pids;
}

void expect_no_snapshots_left(ContainerdServer& containerd, const FerrySnapshotter& ferry) {
  RunResult empty;
  EXPECT_TRUE(test::wait_until(
      [&] {
        empty = containerd.ctr({"snapshots", "--snapshotter", "ferry", "ls"}, 20s);
        return empty.exit_code() == 0 && test::lines_of(empty.out).size() <= 1 &&
               fs::is_empty(ferry.snapshots_dir());
      },
      60s))
      << empty.describe() << containerd.log_tail() << ferry.log();
}

RunResult list_ferry_snapshots(ContainerdServer& containerd) {
  RunResult listed;
  (void)test::wait_until(
      [&] {
        listed = containerd.ctr({"snapshots", "--snapshotter", "ferry", "ls"}, 20s);
        return listed.exit_code() == 0;
      },
      60s);
  return listed;
}

void BusyboxDataImage::make() {
  std::ifstream in(kBusybox, std::ios::binary);
  std::string busybox((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<TarEntry> base = {dir("bin"), file("bin/busybox", busybox, 0755)};
  for (const char* applet : {"sh", "find", "sort", "stat", "readlink", "sha256sum", "cut", "cat", "echo", "sleep"})
    base.push_back(symlink(std::string("bin/") + applet, "busybox"));
  a_bin = random_bytes(300 * 1024, 1);
  std::vector<TarEntry> data = {dir("data"),
                                file("data/a.bin", a_bin),
                                file("data/run.sh", "#!/bin/sh\necho hi\n", 0755),
                                dir("data/sub", 0750),
                                file("data/sub/deep.txt", "deep\n", 0600),
                                symlink("data/link", "a.bin"),
                                file("data/gone.txt", "soon removed\n"),
                                file("data/override.txt", "v1\n"),
                                dir("etc"),
                                dir("etc/ferry"),
                                file("etc/ferry/hello", "hello\n")};
  data[4].uid = 1000;
  data[4].gid = 100;
  new_bin = random_bytes(1 << 20, 2);
  std::vector<TarEntry> top = {dir("data"), whiteout("data/gone.txt"), file("data/override.txt", "v2\n"),
                               file("data/new.bin", new_bin)};
  for (const auto& layer : {base, data, top}) {
    tars.push_back(make_tar(layer));
    gz.push_back(make_tar(layer, TarCompression::kGzip));
  }
}

void BusyboxDataImage::expect_listing(const std::string& out) const {
  const auto listing = test::lines_of(out);
  auto has = [&](const std::string& line) {
    return std::find(listing.begin(), listing.end(), line) != listing.end();
  };
  EXPECT_TRUE(has("data/a.bin file 644 0:0 " + std::to_string(a_bin.size()) + " " + sha256_hex(a_bin))) << out;
  EXPECT_TRUE(has("data/new.bin file 644 0:0 " + std::to_string(new_bin.size()) + " " + sha256_hex(new_bin)))
      << out;
  EXPECT_TRUE(has("data/override.txt file 644 0:0 3 " + sha256_hex("v2\n"))) << out;
  EXPECT_TRUE(has("data/sub/deep.txt file 600 1000:100 5 " + sha256_hex("deep\n"))) << out;
  EXPECT_TRUE(has("data/link link a.bin")) << out;
  EXPECT_TRUE(has("data/sub directory 750 0:0")) << out;
  EXPECT_FALSE(out.find("gone.txt") != std::string::npos) << out;
  EXPECT_EQ(listing.size(), kListedPaths) << out;
}

}  // namespace ferry::e2e
