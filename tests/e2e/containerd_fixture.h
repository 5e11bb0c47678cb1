// A private containerd for end-to-end tests: Debian's containerd 1.6 started with its own config,
// root, state and gRPC/ttrpc sockets in a private temp dir (CRI disabled, nothing else on the
// node touched), driven with `ctr -a SOCKET -n NAMESPACE`. Later tests add plugins (a proxy
// snapshotter) through `extra_toml`.
//
// Promises: the constructor waits for the socket under a deadline (ok() says whether it came
// up; on failure the log tail is reported with ADD_FAILURE). The destructor stops everything this
// containerd started: its tasks and containers through ctr (force-deleted, so the shims unmount
// the rootfs and remove cgroups), then by pid whatever shim is left (found by its `-address
// SOCKET`) and its children, then containerd itself (SIGTERM, SIGKILL after a deadline); it
// unmounts whatever is still mounted under its directory (snapshot views, rootfs mounts), deepest
// first, and removes the sockets of shims it had to kill.
// Not thread-safe; one instance per test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "e2e/erofs_fixture.h"
#include "support/test_support.h"

namespace ferry::e2e {

struct ContainerdConfig {
  std::string extra_toml;  // appended to the generated config.toml (version 2)
  // Proxy snapshotters, name -> unix socket: a [proxy_plugins.NAME] section of type "snapshot"
  // each (ctr's --snapshotter NAME then reaches it).
  std::vector<std::pair<std::string, std::string>> proxy_snapshotters;
  std::string ns = "ferry-test";
  std::chrono::milliseconds start_deadline{60'000};
};

// Whether `pid` names a process that runs (a zombie does not).
bool process_alive(pid_t pid);

class ContainerdServer {
 public:
  explicit ContainerdServer(ContainerdConfig config = {});
  ~ContainerdServer();
  ContainerdServer(const ContainerdServer&) = delete;
  ContainerdServer& operator=(const ContainerdServer&) = delete;

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] const std::string& socket() const { return socket_; }
  [[nodiscard]] const std::string& dir() const { return dir_.path(); }
  [[nodiscard]] const std::string& ns() const { return config_.ns; }
  [[nodiscard]] pid_t pid() const { return containerd_.pid(); }
  [[nodiscard]] std::string log_tail() const;

  // `ctr -a SOCKET -n NS ARGS...` under a deadline (killed by pid when it passes).
  RunResult ctr(const std::vector<std::string>& args,
                std::chrono::milliseconds deadline = std::chrono::seconds(120));

  // Pids of the shims this containerd started, and of their descendants.
  [[nodiscard]] std::vector<pid_t> shim_processes() const;

  // Why no containerd can run here (empty when it can): not root, containerd or ctr missing.
  static std::string missing_prerequisite();

 private:
  bool start();
  void stop();
  void remove_tasks_and_containers();
  [[nodiscard]] std::vector<std::string> shim_sockets() const;
  ContainerdConfig config_;
  test::TempDir dir_;
  std::string socket_;
  test::Process containerd_;
  bool ok_ = false;
};

}  // namespace ferry::e2e
