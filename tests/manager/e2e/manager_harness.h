// ManagerHarness: one ferry-snapshotter process for one end-to-end test, with everything it
// starts confined to a private temp dir and cleaned up whatever happens.
//
// What it promises:
// - Each harness has its own root, system socket, logs and mountpoints under its own TempDir,
//   so tests may run in parallel with each other.
// - The manager runs as a Process of the test with FERRY_E2E_ROOT=<temp dir> in its environment;
//   every process it starts (daemons, hot standbys, upgrade candidates, their exec'd shells)
//   inherits the marker. cleanup() (run by the destructor, also after a failed assertion)
//   SIGKILLs the manager by pid, then every process whose environment or command line names
//   the temp dir (found by scanning /proc, so daemons that outlived a killed manager or were
//   re-parented to init are found too), then lazily unmounts everything under the temp dir.
// - Every wait has a deadline. HTTP helpers never throw; a transport failure answers status -1.
//
// Thread-safety: one test thread drives a harness; the query helpers (daemons(), records(), ...)
// may also be called from other threads (they only do HTTP requests).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/daemon_harness.h"
#include "http/http_client.h"
#include "support/test_support.h"

namespace ferry::test {

struct ManagerOptions {
  std::string daemon_mode = "dedicated";  // "dedicated" | "shared"
  std::string recover_policy = "failover";
  std::string failover_policy = "resend";
  unsigned threads = 2;
  unsigned recover_attempts = 3;
  bool hot_standby = true;
  std::string nydusd_path;  // empty: binary_path("ferryd")
  std::string log_level = "info";
  std::map<std::string, std::string> env;  // extra environment of the manager process

  // Chainable setters (designated initializers with std::string members trip g++ 12's
  // -Wmissing-field-initializers).
  ManagerOptions& with_mode(std::string mode) {
    daemon_mode = std::move(mode);
    return *this;
  }
  ManagerOptions& with_policy(std::string policy) {
    recover_policy = std::move(policy);
    return *this;
  }
  ManagerOptions& with_hot_standby(bool on) {
    hot_standby = on;
    return *this;
  }
  ManagerOptions& with_env(const std::string& name, const std::string& value) {
    env[name] = value;
    return *this;
  }
};

// One answer of the system API; `json` is null when the body is not JSON, `status` is -1 (and
// `body` the transport error) when there was no answer.
struct ApiAnswer {
  int status = -1;
  std::string body;
  nlohmann::json json;
  // The error answer's "message" ("" when there is none).
  [[nodiscard]] std::string message() const {
    return json.is_object() && json.contains("message") && json["message"].is_string()
               ? json["message"].get<std::string>()
               : "";
  }
};

class ManagerHarness {
 public:
  explicit ManagerHarness(ManagerOptions options = {});
  ~ManagerHarness();
  ManagerHarness(const ManagerHarness&) = delete;
  ManagerHarness& operator=(const ManagerHarness&) = delete;

  [[nodiscard]] const std::string& dir() const { return dir_.path(); }
  [[nodiscard]] std::string root() const { return dir_ / "root"; }
  [[nodiscard]] std::string system_socket() const { return dir_ / "system.sock"; }
  [[nodiscard]] std::string config_path() const { return dir_ / "config.toml"; }
  [[nodiscard]] std::string manager_log() const { return dir_ / "manager.log"; }
  [[nodiscard]] std::string log_dir() const { return dir_ / "logs"; }
  [[nodiscard]] const ManagerOptions& options() const { return options_; }

  // Starts ferry-snapshotter (a fresh process each time; the root and its records stay) and
  // waits until the system socket answers GET /api/v1/daemons. Fails the test otherwise.
  ::testing::AssertionResult start(std::chrono::milliseconds timeout = 20s);
  // SIGTERM and wait for the exit (SIGKILL after `timeout`); returns the wait status.
  int stop(std::chrono::milliseconds timeout = 20s);
  // SIGKILL the manager only (its daemons keep running).
  void kill_manager();
  [[nodiscard]] pid_t manager_pid() const { return manager_.pid(); }
  bool manager_running() { return manager_.running(); }

  // A sample image under the temp dir plus a fresh mountpoint directory for it.
  SampleImage make_image(const std::string& name, int files = 24, uint64_t seed = 7);
  std::string make_mountpoint(const std::string& name);

  // Raw request to the system socket.
  ApiAnswer request(const std::string& method, const std::string& path, const std::string& body = {},
                    std::chrono::milliseconds timeout = 30s) const;
  // POST /api/v1/mounts; returns the daemon id (empty and a test failure if not 201).
  std::string mount(const std::string& mountpoint, const SampleImage& image);
  ApiAnswer mount_raw(const std::string& body) const;
  // The usual start of a test: a sample image `name` (files, seed), a mountpoint of the same
  // name, the manager started and the image mounted and RUNNING. `id` is empty (and the test
  // has failed) if any step failed.
  struct OneMount {
    SampleImage image;
    std::string mountpoint;
    std::string id;
  };
  OneMount start_with_one_mount(const std::string& name, int files, uint64_t seed);
  // mount(), then waits until the daemon is RUNNING; the id, or empty and a test failure.
  std::string mount_running(const std::string& mountpoint, const SampleImage& image);
  // DELETE /api/v1/mounts?mountpoint=...; returns the status.
  int umount(const std::string& mountpoint) const;
  // PUT /api/v1/nydusd/upgrade {"nydusd_path": path[, "version": version]}.
  ApiAnswer upgrade(const std::string& nydusd_path, const std::string& version = {},
                    std::chrono::milliseconds timeout = 60s) const;

  // GET /api/v1/daemons (an empty array when it does not answer).
  [[nodiscard]] nlohmann::json daemons() const;
  // The daemon object with `id` (an empty object if not listed, so .value() works).
  [[nodiscard]] nlohmann::json daemon(const std::string& id) const;
  // Its pid (0 when not listed).
  [[nodiscard]] pid_t daemon_pid(const std::string& id) const;
  // Its state ("" when not listed).
  [[nodiscard]] std::string daemon_state(const std::string& id) const;
  // GET /api/v1/daemons/records[?daemon=id] (an empty array when it does not answer).
  [[nodiscard]] nlohmann::json records(const std::string& daemon_id = {}) const;
  // Records of one kind ("death", "failover", ...), optionally of one daemon.
  [[nodiscard]] std::vector<nlohmann::json> records_of(const std::string& event,
                                                       const std::string& daemon_id = {}) const;
  // GET /metrics text ("" if it does not answer).
  [[nodiscard]] std::string metrics() const;
  // The value of one series, e.g. `ferry_events_total{event="failover"}` (-1 when absent).
  [[nodiscard]] double metric(const std::string& series) const;
  // ferry_events_total{event="KIND"} (-1 when absent).
  [[nodiscard]] double event_counter(const std::string& event) const;

  // Polls until the daemon is listed with a pid other than `old_pid` and state RUNNING;
  // returns the new pid (0 on timeout).
  pid_t wait_for_pid_change(const std::string& id, pid_t old_pid,
                            std::chrono::milliseconds timeout = 20s) const;
  // kill -9 of the daemon's `pid`, then wait_for_pid_change(); the successor's pid, or 0 and a
  // test failure naming the daemon's view and records.
  pid_t crash_and_wait_successor(const std::string& id, pid_t pid,
                                 std::chrono::milliseconds timeout = 20s) const;
  // Polls until the daemon is listed in `state`.
  bool wait_daemon_state(const std::string& id, const std::string& state,
                         std::chrono::milliseconds timeout = 20s) const;

  // Every live process (not the test itself) whose environment or command line names the
  // temp dir: the manager, its daemons and anything they started.
  [[nodiscard]] std::set<pid_t> our_processes() const;
  // Kills the manager and every process of ours (by pid), unmounts everything under the temp
  // dir. Idempotent; the destructor calls it.
  void cleanup();
  // Prints the manager log and the daemon logs (tails) to stderr; called on test failure.
  void dump_logs() const;

  // Runs cleanup() when it goes out of scope. Declare it AFTER the test's Readers: a reader
  // blocked on a mount whose daemon is dead (and whose /dev/fuse fd the manager still holds)
  // only returns once the manager and daemons are killed, so cleanup must come before the
  // Readers' destructor joins its threads.
  class CleanupGuard {
   public:
    explicit CleanupGuard(ManagerHarness& h) : h_(h) {}
    ~CleanupGuard() { h_.cleanup(); }
    CleanupGuard(const CleanupGuard&) = delete;
    CleanupGuard& operator=(const CleanupGuard&) = delete;

   private:
    ManagerHarness& h_;
  };

 private:
  void write_config() const;

  ManagerOptions options_;
  TempDir dir_;
  Process manager_;
};

// Reads the file through the mount in a helper thread; returns the bytes, or the error text
// prefixed with "error: " (e.g. "error: Transport endpoint is not connected"), or nullopt when
// it did not finish within `timeout` (the thread is detached and left blocked: only use this
// where the test then tears the mount down).
std::optional<std::string> read_with_deadline(const std::string& path, std::chrono::milliseconds timeout);
// The same for any blocking action (e.g. a pread on a descriptor opened earlier; the callable
// must own what it uses: it may outlive the caller).
std::optional<std::string> run_with_deadline(std::function<std::string()> action,
                                             std::chrono::milliseconds timeout);
// Opens `path` (O_RDONLY) and returns the fd (-1 on failure); closed by the caller.
int open_file(const std::string& path);
// Reads the whole file through an fd opened earlier (pread from 0): its bytes, or "error: ...".
std::string pread_all(int fd, size_t size);

}  // namespace ferry::test
