// What the containerd snapshotter e2e tests share: ferry-snapshotter started with a private root,
// sockets and logs (FerrySnapshotter), the busybox-static + data files image they run
// (BusyboxDataImage) and the listing each container prints (kListing).
//
// FerrySnapshotter's destructor leaves nothing: daemons outlive their manager by design, so it
// kills (by pid, from the manager's own list) every ferryd and hot standby the manager knows,
// then the manager, then unmounts whatever is left under its directory. Not thread-safe.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "e2e/erofs_fixture.h"
#include "support/test_support.h"

namespace ferry::e2e {

// The root's mode and owner, then every path under /data and /etc/ferry with its kind, mode,
// owner, size, link target and content hash (busybox applets only).
extern const char* const kListing;

// Why the containerd snapshotter tests cannot run here ("" when they can): root, containerd,
// ctr, runc, skopeo, docker-registry, /bin/busybox (busybox-static).
std::string containerd_snapshotter_prerequisite();

class FerrySnapshotter {
 public:
  // `extra_toml`: appended to the generated config (sections after [log]).
  explicit FerrySnapshotter(const test::TempDir& dir, std::string extra_toml = "");
  ~FerrySnapshotter();
  FerrySnapshotter(const FerrySnapshotter&) = delete;
  FerrySnapshotter& operator=(const FerrySnapshotter&) = delete;

  // Starts it and waits (under a deadline) for its gRPC socket; false when it did not come up.
  bool start();
  void kill();  // SIGKILL by pid and reap; its daemons keep serving
  [[nodiscard]] bool running() { return process_.running(); }
  [[nodiscard]] std::string socket() const { return dir_ / "ferry-grpc.sock"; }
  [[nodiscard]] std::string system_socket() const { return dir_ / "system.sock"; }
  [[nodiscard]] std::string root() const { return dir_ / "root"; }
  [[nodiscard]] std::string snapshots_dir() const { return dir_ / "root/snapshots"; }
  [[nodiscard]] std::string log() const;
  // `ferryctl --socket SYSTEM ARGS...`: exit code and stdout (stderr goes to the result too).
  RunResult ctl(const std::vector<std::string>& args);
  // The daemons the manager lists (`ferryctl daemons --json`): pids of the daemons (and, with
  // `standbys`, of their hot standbys); empty when the manager does not answer.
  std::vector<pid_t> daemon_pids(bool standbys = false);

 private:
  const test::TempDir& dir_;
  test::Process process_;
};

class ContainerdServer;
// Waits (60 s) until containerd lists no snapshot of `ferry`'s and its snapshot directory is
// empty; on failure an EXPECT reports the last listing and containerd's log.
void expect_no_snapshots_left(ContainerdServer& containerd, const FerrySnapshotter& ferry);
// `ctr snapshots --snapshotter ferry ls` until it succeeds (60 s): after a restart of
// ferry-snapshotter containerd's first call fails while it redials. Returns the last attempt.
RunResult list_ferry_snapshots(ContainerdServer& containerd);

// Three layers, lowest first: busybox-static and its applets; data files (a 300 KiB random file,
// a script, a 0750 directory with a 0600 file owned 1000:100, a symlink, two files the top
// layer changes); the top layer removes one (whiteout), overwrites the other and adds 1 MiB.
struct BusyboxDataImage {
  std::vector<std::string> tars, gz;  // uncompressed and gzip layers
  std::string a_bin, new_bin;         // the contents of data/a.bin and data/new.bin
  static constexpr size_t kListedPaths = 11;
  void make();
  // Asserts (gtest) that `listing` (kListing's output) says what the layers hold.
  void expect_listing(const std::string& listing) const;
};

// The tests' base: skips without the prerequisites (and `also_needs()`' own), gives a scratch
// ImageDir, ferry-snapshotter's directory and the image; tool() runs a program under a deadline.
class ContainerdSnapshotterFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = containerd_snapshotter_prerequisite();
    if (missing.empty()) missing = also_needs();
    if (!missing.empty()) GTEST_SKIP() << missing;
  }
  // Why a particular test cannot run here ("" when it can).
  virtual std::string also_needs() { return ""; }
  RunResult tool(const std::vector<std::string>& argv) {
    return run_with_deadline(argv, dir_.path(), std::chrono::seconds(180));
  }

  ImageDir dir_;
  test::TempDir ferry_dir_;
  BusyboxDataImage image_;
};

}  // namespace ferry::e2e
