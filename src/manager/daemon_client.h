// DaemonClient: the manager's side of one ferryd's HTTP API (docs/api.md), nothing else.
//
// Every call is one request with its own deadline; a non-2xx answer becomes an Error whose
// message carries the daemon's own {"message"} ("ferryd d1: takeover: 400 rejected state: ...").
// Transport failures keep their errno (ECONNREFUSED/ENOENT: nobody listens; ETIMEDOUT).
//
// Thread-safety: stateless apart from the socket path; calls may run concurrently.
#pragma once

#include <chrono>
#include <string>

#include "common/result.h"

namespace ferry::manager {

struct DaemonInfo {
  std::string id;
  std::string state;    // INIT, READY, RUNNING, STOPPED
  std::string version;  // version.package_ver
  std::string git_commit;
  int64_t pid = 0;
};

class DaemonClient {
 public:
  explicit DaemonClient(std::string api_socket, std::string label = {});

  Result<DaemonInfo> info(std::chrono::milliseconds timeout = std::chrono::seconds(2)) const;
  // Polls info() until the daemon reports `state` (or the deadline passes: ETIMEDOUT naming the
  // last state seen or the last transport error). Polls every 200 us at first, backing off to
  // 5 ms, so a daemon that comes up quickly is seen quickly.
  Result<DaemonInfo> wait_state(const std::string& state, std::chrono::milliseconds timeout) const;
  Status start(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  // READY after a takeover: start by itself the moment the state's saver exits (a prepared
  // hot standby). Returns once the daemon watches; it stays READY until then.
  Status start_when_predecessor_exits(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  Status exit(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  Status sendfd(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  Status takeover(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // POST /api/v1/mount?mountpoint=SUB with {"source", "fs_type": "rafs", "config": TEXT}.
  Status attach(const std::string& sub, const std::string& bootstrap, const std::string& config_json,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // DELETE /api/v1/mount?mountpoint=SUB.
  Status detach(const std::string& sub, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  [[nodiscard]] const std::string& socket() const { return socket_; }

 private:
  std::string socket_;
  std::string label_;
};

}  // namespace ferry::manager
