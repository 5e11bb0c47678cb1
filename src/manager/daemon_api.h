// DaemonApi: what the manager asks of one ferryd's HTTP API (docs/api.md). DaemonClient is the
// real one (HTTP over the API socket); a unit test of DaemonManager gives its own through Env.
//
// Errors: a non-2xx answer is an Error carrying the daemon's own {"message"} and the errno of its
// status (http/error_status.h: 400 -> EINVAL, ...); transport failures keep their errno
// (ECONNREFUSED/ENOENT: nobody listens; ETIMEDOUT).
//
// Thread-safety: calls may run concurrently.
#pragma once

#include <chrono>
#include <cstdint>
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

class DaemonApi {
 public:
  using ms = std::chrono::milliseconds;
  virtual ~DaemonApi() = default;

  virtual Result<DaemonInfo> info(ms timeout = std::chrono::seconds(2)) const = 0;
  virtual Status start(ms timeout = std::chrono::seconds(5)) const = 0;
  // READY after a takeover: start by itself the moment the state's saver exits (a prepared
  // hot standby). Returns once the daemon watches; it stays READY until then.
  virtual Status start_when_predecessor_exits(ms timeout = std::chrono::seconds(5)) const = 0;
  virtual Status exit(ms timeout = std::chrono::seconds(5)) const = 0;
  // The daemon connects to its supervisor socket and saves its state and /dev/fuse fd there.
  virtual Status sendfd(ms timeout = std::chrono::seconds(5)) const = 0;
  // The daemon (in INIT) connects to its supervisor socket and takes the held state over.
  virtual Status takeover(ms timeout = std::chrono::seconds(10)) const = 0;
  // POST /api/v1/mount?mountpoint=SUB with {"source", "fs_type": "rafs", "config": TEXT}.
  virtual Status attach(const std::string& sub, const std::string& bootstrap, const std::string& config_json,
                        ms timeout = std::chrono::seconds(10)) const = 0;
  // DELETE /api/v1/mount?mountpoint=SUB.
  virtual Status detach(const std::string& sub, ms timeout = std::chrono::seconds(10)) const = 0;
  // GET /api/v1/metrics: the daemon's counters as it answered (JSON text). ENOSYS by default.
  virtual Result<std::string> metrics(ms /*timeout*/ = std::chrono::milliseconds(500)) const {
    return Error{ENOSYS, "metrics are not available from this daemon API"};
  }
};

}  // namespace ferry::manager
