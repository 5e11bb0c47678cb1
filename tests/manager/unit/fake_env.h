// FakeEnv: an Env (src/manager/env.h) whose daemons are objects in this process, for unit tests
// of DaemonManager's policies without root, ferryd or mounts.
//
// A fake daemon answers ferryd's API from memory with ferryd's state rules (a fresh one is
// RUNNING at once, an --upgrade one waits in INIT for a takeover, READY until started or, when
// armed, until the serving daemon of its id exits). Its state travels through the manager's
// REAL supervisor socket: sendfd seals a payload and sends it with an eventfd standing in for
// /dev/fuse (ipc::send_state), takeover receives it (ipc::receive_state). Its "pidfd" is an
// eventfd written at its end, which the real DeathWatcher polls.
//
// The clock moves only when the manager waits (poll pauses and backoffs), and every backoff is
// recorded. Faults are planned per spawn (plan()) or injected (kill(), on_exit).
//
// Thread-safety: all methods may be called from any thread (one mutex); hooks run without it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "manager/env.h"

namespace ferry::manager::fake {

// What the next spawned daemon does (default: behaves).
struct Plan {
  std::optional<int> exit_at_start;  // exits with this status before answering anything
  std::string stderr_line;           // written to its log as it exits ("ferryd: error: ...")
  bool refuse_takeover = false;      // takeover answers 400
};

struct FakeDaemon {
  pid_t pid = 0;
  std::string binary;
  std::string id;
  std::string api;
  std::string supervisor;
  std::string log;
  bool upgrade = false;
  std::string state;   // INIT, READY, RUNNING
  bool armed = false;  // READY, starting when the serving daemon of its id exits
  bool alive = true;
  std::string how;  // how it ended
  std::optional<int> exit_code;
  Plan plan;
  UniqueFd exited;  // eventfd: readable once it has ended (its "pidfd")
  UniqueFd fuse;    // the fd it would serve (an eventfd; the one handed over after a takeover)
};

class FakeEnv final : public Env {
 public:
  FakeEnv();

  // --- Env
  Result<DaemonProcess> spawn(const std::vector<std::string>& argv, const std::string& log_file,
                              bool idle_priority) override;
  Result<DaemonProcess> adopt(pid_t pid, uint64_t start_time) override;
  std::unique_ptr<DaemonApi> api(const std::string& socket, const std::string& label) override;
  Clock::time_point now() override;
  void sleep_for(std::chrono::microseconds pause) override;
  bool wait_unless(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, std::chrono::milliseconds delay,
                   const std::function<bool()>& stop) override;

  // --- for tests
  void plan(Plan p);                                // for the next daemon spawned
  void set_version(const std::string& binary, const std::string& version);
  void kill(pid_t pid);                             // SIGKILL, as the kernel would report it
  [[nodiscard]] std::vector<std::chrono::milliseconds> backoffs() const;
  // What happened, in order: "spawn <pid> <binary> [upgrade]", "sendfd <pid>", "takeover <pid>",
  // "start <pid>", "arm <pid>", "exit <pid>", "killed <pid>", "version <binary>".
  [[nodiscard]] std::vector<std::string> log() const;
  [[nodiscard]] std::vector<pid_t> spawned() const;  // daemon pids in spawn order
  [[nodiscard]] bool alive(pid_t pid) const;
  [[nodiscard]] std::string state(pid_t pid) const;
  [[nodiscard]] std::string binary_of(pid_t pid) const;
  // Called (without the lock) after a daemon left through its API's exit.
  std::function<void(pid_t)> on_exit;

  // Internal, for FakeProcess / FakeApi.
  std::shared_ptr<FakeDaemon> find(pid_t pid) const;
  std::shared_ptr<FakeDaemon> serving_at(const std::string& api) const;
  void end(const std::shared_ptr<FakeDaemon>& d, const std::string& how, std::optional<int> code);
  void set_state(pid_t pid, const std::string& state, bool armed);
  void note(std::string line);
  std::string version_of(const std::string& binary) const;

 private:
  mutable std::mutex mu_;
  std::map<pid_t, std::shared_ptr<FakeDaemon>> daemons_;
  std::vector<pid_t> order_;
  std::deque<Plan> plans_;
  std::map<std::string, std::string> versions_;
  std::vector<std::chrono::milliseconds> backoffs_;
  std::vector<std::string> log_;
  pid_t next_pid_ = 100000;
  Clock::duration elapsed_{};
};

}  // namespace ferry::manager::fake
