// Ferry images through containerd with the real parts: Debian's containerd 1.6 (a private
// instance with [proxy_plugins.ferry]), runc, Debian's docker-registry on 127.0.0.1, skopeo,
// `ferry-image convert` and ctr-remote (stargz-snapshotter). The image is made here (busybox-static
// and data files, BusyboxDataImage) and converted into a Ferry image in the registry.
//   - `ctr-remote images rpull --plain-http --snapshotter ferry` pulls it without downloading its
//     blob layers (containerd's content store holds none of them; their snapshots are empty);
//   - a container run on it lists its files exactly as the original image does on containerd's
//     overlayfs snapshotter; when it goes, its ferryd goes;
//   - a long-running container verifies its files (sha256, page cache dropped every round) while
//     its ferryd is killed with SIGKILL 5 times: each time a successor takes over, the container
//     counts zero failed checks;
//   - a second container shares the daemon; ferry-snapshotter SIGKILLed and restarted finds the
//     daemon again and still fails it over under the container;
//   - with the registry down, a new container's Prepare fails within a bound, naming the
//     registry, and leaves no snapshot;
//   - `ctr images rm` and containerd's GC leave no ferryd, mount or snapshot directory.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/proc_files.h"
#include "e2e/containerd_fixture.h"
#include "e2e/erofs_fixture.h"
#include "e2e/ferry_snapshotter_fixture.h"
#include "e2e/tar_writer.h"
#include "oci/registry_fixture.h"

namespace ferry::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kKills = 5;

// "OK BAD" as the checking container last wrote it (nullopt while unreadable or half written).
std::optional<std::pair<long, long>> read_status(const std::string& path) {
  std::istringstream in(test::read_file(path));
  long ok = -1, bad = -1;
  std::string end;
  if (!(in >> ok >> bad >> end) || end != "end") return std::nullopt;
  return std::make_pair(ok, bad);
}

// Blob GETs of `repo` in the registry's access log, and the bytes they answered.
struct BlobGets {
  size_t requests = 0;
  uint64_t bytes = 0;
};
BlobGets blob_gets(const std::string& log, const std::string& repo) {
  BlobGets gets;
  const std::string marker = "\"GET /v2/" + repo + "/blobs/";
  for (const auto& line : test::lines_of(log)) {
    auto at = line.find(marker);
    if (at == std::string::npos) continue;
    auto end = line.find("\" ", at + 1);  // after the request line: STATUS BYTES
    if (end == std::string::npos) continue;
    std::istringstream in(line.substr(end + 2));
    int status = 0;
    uint64_t bytes = 0;
    if (!(in >> status >> bytes)) continue;
    gets.requests++;
    gets.bytes += bytes;
  }
  return gets;
}

class ContainerdFerryImageTest : public ContainerdSnapshotterFixture {
 protected:
  std::string also_needs() override {
    if (!fs::exists("/usr/bin/ctr-remote")) return "ctr-remote (stargz-snapshotter) is not installed";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) return "no /dev/fuse";
    return "";
  }
};

TEST_F(ContainerdFerryImageTest, RunsLazilyAsOnOverlayfsSurvivesDaemonKillsAndLeavesNothing) {
  oci::test::RegistryServer registry;
  ASSERT_TRUE(registry.ok());
  FerrySnapshotter ferry(ferry_dir_, "[remote]\nauth_file = \"" + (ferry_dir_ / "no-auth.json") +
                                         "\"\ninsecure_registries = [\"" + registry.host() + "\"]\n");
  ASSERT_TRUE(ferry.start()) << ferry.log();
  ContainerdConfig config;
  config.proxy_snapshotters = {{"ferry", ferry.socket()}};
  ContainerdServer containerd(config);
  ASSERT_TRUE(containerd.ok());

  // The original image, and its Ferry conversion, in the registry.
  image_.make();
  write_oci_layout(dir_.path() + "/oci", "v1", image_.gz, image_.tars);
  const std::string original = registry.host() + "/plain/busybox-data:v1";
  const std::string converted = registry.host() + "/ferry/busybox-data:v1";
  auto pushed = tool({"/usr/bin/skopeo", "copy", "--dest-tls-verify=false", "oci:" + dir_.path() + "/oci:v1",
                      "docker://" + original});
  ASSERT_EQ(pushed.exit_code(), 0) << pushed.describe();
  auto conv = tool({test::binary_path("ferry-image"), "convert", "--source", original, "--target", converted,
                    "--plain-http"});
  ASSERT_EQ(conv.exit_code(), 0) << conv.describe();

  // Pulled lazily: containerd stores the manifest, config and bootstrap layer, no blob layer.
  auto rpull = tool({"/usr/bin/ctr-remote", "-a", containerd.socket(), "-n", containerd.ns(), "images", "rpull",
                     "--plain-http", "--snapshotter", "ferry", converted});
  ASSERT_EQ(rpull.exit_code(), 0) << rpull.describe() << containerd.log_tail() << ferry.log();
  auto content = containerd.ctr({"content", "ls"});
  ASSERT_EQ(content.exit_code(), 0) << content.describe();
  EXPECT_EQ(content.out.find("ferry.blob"), std::string::npos) << content.out;
  auto snaps = containerd.ctr({"snapshots", "--snapshotter", "ferry", "ls"});
  ASSERT_EQ(snaps.exit_code(), 0) << snaps.describe();
  const size_t committed = test::lines_of(snaps.out).size() - 1;
  EXPECT_GE(committed, 2U) << snaps.out;  // at least one blob layer and the bootstrap
  for (const auto& entry : fs::directory_iterator(ferry.snapshots_dir())) {
    // Every layer's files: the bootstrap's image/ only.
    for (const auto& f : fs::directory_iterator(entry.path() / "fs")) {
      EXPECT_EQ(f.path().filename(), "image") << f.path();
    }
  }
  EXPECT_TRUE(ferry.daemon_pids().empty()) << "a ferryd started before any container";
  const BlobGets at_pull = blob_gets(registry.log(), "ferry/busybox-data");

  // A container on Ferry lists what the original lists on containerd's overlayfs.
  auto on_ferry =
      containerd.ctr({"run", "--rm", "--snapshotter", "ferry", converted, "on-ferry", "/bin/sh", "-c", kListing});
  ASSERT_EQ(on_ferry.exit_code(), 0) << on_ferry.describe() << containerd.log_tail() << ferry.log();
  image_.expect_listing(on_ferry.out);
  // The container's reads were the first fetches of the blob layers' chunks.
  const BlobGets after_run = blob_gets(registry.log(), "ferry/busybox-data");
  EXPECT_GT(after_run.requests, at_pull.requests) << registry.log();
  EXPECT_LT(at_pull.bytes, 64U * 1024) << "the pull fetched more than the config and the bootstrap";
  EXPECT_GT(after_run.bytes - at_pull.bytes, image_.new_bin.size()) << "the container read its files from the registry";
  std::printf("[ e2e    ] registry blob GETs of the Ferry image: %zu (%llu bytes) by the pull, %zu (%llu bytes) "
              "more by the first container\n",
              at_pull.requests, static_cast<unsigned long long>(at_pull.bytes), after_run.requests - at_pull.requests,
              static_cast<unsigned long long>(after_run.bytes - at_pull.bytes));
  auto pull_overlay = containerd.ctr({"images", "pull", "--plain-http", original});
  ASSERT_EQ(pull_overlay.exit_code(), 0) << pull_overlay.describe();
  auto on_overlay = containerd.ctr({"run", "--rm", original, "on-overlay", "/bin/sh", "-c", kListing});
  ASSERT_EQ(on_overlay.exit_code(), 0) << on_overlay.describe();
  EXPECT_EQ(on_ferry.out, on_overlay.out);
  // Its container gone, the image's ferryd is gone too.
  EXPECT_TRUE(test::wait_until([&] { return ferry.daemon_pids().empty(); }, 30s)) << ferry.ctl({"daemons"}).out;
  EXPECT_TRUE(mounts_at_or_below(ferry.snapshots_dir()).empty());

  // A long-running container checks its files every round, reading through the daemon.
  const std::string out = ferry_dir_ / "out";
  fs::create_directories(out);
  const std::string script =
      "ok=0; bad=0; while [ ! -e /out/stop ]; do echo 3 > /proc/sys/vm/drop_caches; "
      "for pair in 'data/a.bin " + sha256_hex(image_.a_bin) + "' 'data/new.bin " + sha256_hex(image_.new_bin) +
      "' 'etc/ferry/hello " + sha256_hex("hello\n") +
      "'; do set -- $pair; h=$(sha256sum < /$1 | cut -d' ' -f1); "
      "if [ \"$h\" = \"$2\" ]; then ok=$((ok+1)); else bad=$((bad+1)); echo \"$1 $h\" >> /out/errors; fi; done; "
      "echo \"$ok $bad end\" > /out/status; done";
  auto started = containerd.ctr({"run", "-d", "--privileged", "--snapshotter", "ferry", "--mount",
                                 "type=bind,src=" + out + ",dst=/out,options=rbind:rw", converted, "checker",
                                 "/bin/sh", "-c", script});
  ASSERT_EQ(started.exit_code(), 0) << started.describe() << containerd.log_tail() << ferry.log();
  auto checks = [&] { return read_status(out + "/status").value_or(std::make_pair(-1L, -1L)); };
  ASSERT_TRUE(test::wait_until([&] { return checks().first >= 6; }, 60s)) << test::read_file(out + "/errors");

  // One ferryd serves the image, from a FUSE mount under the bootstrap's snapshot.
  auto pids = ferry.daemon_pids();
  ASSERT_EQ(pids.size(), 1U) << ferry.ctl({"daemons"}).out;
  auto daemons = ferry.ctl({"daemons"});
  std::printf("[ e2e    ] ferryctl daemons:\n%s", daemons.out.c_str());
  EXPECT_EQ(mounts_at_or_below(ferry.snapshots_dir()).size(), 1U);
  // The manager's Prometheus text carries the daemon's fetches and cache, per blob.
  std::string scrape;
  EXPECT_EQ(test::run_shell("curl -s --max-time 10 --unix-socket " + ferry.system_socket() + " http://ferry/metrics",
                            &scrape),
            0);
  EXPECT_NE(scrape.find("\nferry_blob_fetched_bytes_total{daemon=\""), std::string::npos) << scrape;
  EXPECT_NE(scrape.find("\nferry_blob_cache_chunks_present{daemon=\""), std::string::npos) << scrape;
  EXPECT_NE(scrape.find("# TYPE ferry_blob_fetch_latency_ms histogram"), std::string::npos) << scrape;

  for (int round = 0; round < kKills; ++round) {
    const pid_t victim = ferry.daemon_pids().at(0);
    const long before = checks().first;
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    // A successor serves (another pid) and the container keeps checking.
    ASSERT_TRUE(test::wait_until(
        [&] {
          auto now = ferry.daemon_pids();
          return now.size() == 1 && now[0] != victim && checks().first >= before + 6;
        },
        60s))
        << "round " << round << ": " << ferry.ctl({"daemons"}).out << ferry.log();
    EXPECT_FALSE(process_alive(victim));
  }
  // A second container of the image shares its daemon.
  auto second = containerd.ctr(
      {"run", "--rm", "--snapshotter", "ferry", converted, "second", "/bin/cat", "/etc/ferry/hello"});
  EXPECT_EQ(second.exit_code(), 0) << second.describe();
  EXPECT_EQ(second.out, "hello\n");
  EXPECT_EQ(ferry.daemon_pids().size(), 1U);

  // ferry-snapshotter SIGKILLed and started again: it finds the daemon from its records, and a
  // crash of that daemon is still failed over under the running container.
  const pid_t serving = ferry.daemon_pids().at(0);
  ferry.kill();
  ASSERT_TRUE(ferry.start()) << ferry.log();
  ASSERT_TRUE(test::wait_until([&] { return ferry.daemon_pids() == std::vector<pid_t>{serving}; }, 30s))
      << ferry.ctl({"daemons"}).out;
  // containerd's connection to the killed snapshotter fails its next call, then redials; let
  // that call be ours (one of its GC's would fail and the GC wait for its next trigger).
  RunResult listed = list_ferry_snapshots(containerd);
  ASSERT_EQ(listed.exit_code(), 0) << listed.describe();
  {
    const long before = checks().first;
    ASSERT_EQ(::kill(serving, SIGKILL), 0);
    ASSERT_TRUE(test::wait_until(
        [&] {
          auto now = ferry.daemon_pids();
          return now.size() == 1 && now[0] != serving && checks().first >= before + 6;
        },
        60s))
        << ferry.ctl({"daemons"}).out << ferry.log();
  }

  const auto final_checks = checks();
  EXPECT_EQ(final_checks.second, 0) << test::read_file(out + "/errors");
  auto records = ferry.ctl({"records"});
  std::printf("[ e2e    ] %d ferryd SIGKILLs, then one after a ferry-snapshotter restart, under a checking "
              "container: %ld checks passed, %ld failed\n%s",
              kKills, final_checks.first, final_checks.second, records.out.c_str());

  // The registry down: a new container's Prepare fails in bounded time, naming the registry,
  // and leaves no snapshot (the running container's daemon is untouched).
  const auto snapshot_dirs = [&] {
    return static_cast<size_t>(std::distance(fs::directory_iterator(ferry.snapshots_dir()), {}));
  };
  const size_t dirs_before = snapshot_dirs();
  registry.stop();
  // The checker still holds the image's daemon: stop it first so the new Prepare must start one.
  std::ofstream(out + "/stop").put('\n');
  auto kill_task = containerd.ctr({"task", "kill", "-s", "SIGKILL", "checker"});
  EXPECT_TRUE(test::wait_until(
      [&] {
        auto ls = containerd.ctr({"task", "ls"});
        return ls.out.find("checker") == std::string::npos || ls.out.find("STOPPED") != std::string::npos;
      },
      30s));
  EXPECT_EQ(containerd.ctr({"task", "delete", "checker"}).exit_code(), 0);
  EXPECT_EQ(containerd.ctr({"containers", "delete", "checker"}).exit_code(), 0);
  // containerd removes the container's snapshot in its garbage collection, a little later.
  ASSERT_TRUE(test::wait_until(
      [&] { return ferry.daemon_pids().empty() && snapshot_dirs() + 1 == dirs_before; }, 90s))
      << ferry.ctl({"daemons"}).out << snapshot_dirs() << " snapshot dirs, " << dirs_before << " before\n"
      << ferry.log() << containerd.log_tail();
  const size_t dirs_without_checker = snapshot_dirs();
  const auto t0 = std::chrono::steady_clock::now();
  auto refused = containerd.ctr(
      {"run", "--rm", "--snapshotter", "ferry", converted, "unreachable", "/bin/sh", "-c", "true"}, 90s);
  const double refused_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(refused.exit_code(), 0) << refused.describe();
  EXPECT_NE(refused.err.find("registry"), std::string::npos) << refused.describe();
  EXPECT_LT(refused_s, 60.0);
  EXPECT_EQ(snapshot_dirs(), dirs_without_checker);
  EXPECT_TRUE(ferry.daemon_pids().empty());
  std::printf("[ e2e    ] registry down: the container's Prepare failed after %.1f s: %s\n", refused_s,
              refused.err.substr(0, 400).c_str());
  (void)containerd.ctr({"containers", "delete", "unreachable"});
  ASSERT_TRUE(registry.start_again());

  // Both images removed and garbage collected: no ferryd, mount or snapshot directory is left.
  EXPECT_EQ(containerd.ctr({"images", "rm", "--sync", converted, original}).exit_code(), 0);
  expect_no_snapshots_left(containerd, ferry);
  EXPECT_TRUE(ferry.daemon_pids(true).empty());
  EXPECT_TRUE(mounts_at_or_below(ferry_dir_.path()).empty());
}

}  // namespace
}  // namespace ferry::e2e
